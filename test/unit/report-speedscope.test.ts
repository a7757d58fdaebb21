import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { foldStacks, parseFolded } from '../../src/report/fold.js';
import { SPEEDSCOPE_SCHEMA, toSpeedscope as toSpeedscopeUnique } from '../../src/report/speedscope.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';

// As the CLI does: stacks are merged once (mergeIdentical), then converted.
const toSpeedscope = (stacks: Stack[], meta: Parameters<typeof toSpeedscopeUnique>[1]) => toSpeedscopeUnique(mergeIdentical(stacks), meta);

const small = parseFolded(readFileSync(new URL('../../fixtures/report/small.folded', import.meta.url), 'utf8'));

describe('toSpeedscope', () => {
  const file = toSpeedscope(small, { name: 'small', frequencyHz: 100 });

  it('has the file-format envelope', () => {
    expect(file.$schema).toBe('https://www.speedscope.app/file-format-schema.json');
    expect(file.$schema).toBe(SPEEDSCOPE_SCHEMA);
    expect(file.name).toBe('small');
    expect(file.activeProfileIndex).toBe(0);
    expect(file.exporter).toBe('apisix-profile');
    expect(Object.keys(file).sort()).toEqual(['$schema', 'activeProfileIndex', 'exporter', 'name', 'profiles', 'shared']);
  });

  it('has one sampled profile in milliseconds', () => {
    expect(file.profiles).toHaveLength(1);
    const p = file.profiles[0];
    expect({ type: p.type, name: p.name, unit: p.unit, startValue: p.startValue, endValue: p.endValue }).toEqual({
      type: 'sampled',
      name: 'small',
      unit: 'milliseconds',
      startValue: 0,
      endValue: 470,
    });
    // Stacks sorted by frames; 10 ms per sample at 100 Hz.
    expect(p.weights).toEqual([10, 70, 20, 30, 50, 200, 90]);
    expect(p.samples).toEqual([
      [0, 1, 2, 3],
      [0, 1, 4, 5, 6, 7, 8],
      [0, 1, 4, 9, 10, 11],
      [0, 1, 4, 9, 10, 12, 13],
      [0, 1, 4, 9, 10, 12, 14, 15],
      [0, 1, 4, 9, 10, 12, 14, 16],
      [0, 1, 4, 9, 10, 12, 14, 16, 17],
    ]);
  });

  it('shares frames, with file and line for Lua frames only', () => {
    const frames = file.shared.frames;
    expect(frames).toHaveLength(18);
    expect(new Set(frames.map((f) => f.name)).size).toBe(18);
    expect(frames[0]).toEqual({ name: 'nginx: worker process' });
    expect(frames[12]).toEqual({
      name: 'content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)',
      file: 'content_by_lua(nginx.conf:40)',
      line: 1,
    });
    expect(frames[16]).toEqual({ name: 'heavy (/app/work.lua:12)', file: '/app/work.lua', line: 12 });
    expect(frames[15]).toEqual({ name: `(/app/<tmpl> "a" & 'b'.lua:3)`, file: `/app/<tmpl> "a" & 'b'.lua`, line: 3 });
    expect(frames[17]).toEqual({ name: 'string.format' });
    expect(frames.filter((f) => f.file !== undefined).map((f) => f.line)).toEqual([1, 10, 3, 12]);
  });

  it('keeps the stacks: samples map back to the input', () => {
    const p = file.profiles[0];
    const back = p.samples.map((s, i) => ({
      frames: s.map((k) => file.shared.frames[k].name),
      count: p.weights[i] / 10,
    }));
    expect(foldStacks(back)).toBe(foldStacks(small));
  });

  it('weighs samples by 1000 / frequency ms and survives JSON', () => {
    const f = toSpeedscope(
      [
        { frames: ['a', 'b'], count: 2 },
        { frames: ['a', 'b'], count: 2 },
        { frames: ['a'], count: 1 },
        { frames: ['z'], count: 0 },
        { frames: [], count: 3 },
      ],
      { name: 'n', frequencyHz: 250 },
    );
    expect(f.profiles[0].samples).toEqual([[0], [0, 1]]);
    expect(f.profiles[0].weights).toEqual([4, 16]);
    expect(f.profiles[0].endValue).toBe(20);
    expect(JSON.parse(JSON.stringify(f))).toEqual(f);
  });

  it('handles empty input and validates the frequency', () => {
    const f = toSpeedscope([], { name: 'empty', frequencyHz: 99 });
    expect(f.shared.frames).toEqual([]);
    expect(f.profiles[0]).toMatchObject({ samples: [], weights: [], startValue: 0, endValue: 0 });
    expect(() => toSpeedscope(small, { name: 'x', frequencyHz: 0 })).toThrow(RangeError);
    expect(() => toSpeedscope([{ frames: ['a'], count: -2 }], { name: 'x', frequencyHz: 1 })).toThrow(RangeError);
  });
});
