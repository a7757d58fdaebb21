import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { describe, expect, it } from 'vitest';
import { foldStacks, parseFolded } from '../../src/report/fold.js';
import { parseLuaFrame } from '../../src/report/frame.js';
import { decodePprof, encodePprof as encodeUnique, type PprofMeta } from '../../src/report/pprof.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';

// As the CLI does: stacks are merged once (mergeIdentical), then encoded.
const encodePprof = (stacks: Stack[], meta: PprofMeta) => encodeUnique(mergeIdentical(stacks), meta);

const small = parseFolded(readFileSync(new URL('../../fixtures/report/small.folded', import.meta.url), 'utf8'));
const meta = { frequencyHz: 99, durationNs: 30_000_000_000n, startNs: 1_700_000_000_000_000_000n };

function decodeRaw(buf: Buffer): { profile: Profile; str: (i: unknown) => string } {
  const profile = Profile.decode(gunzipSync(buf));
  return { profile, str: (i) => profile.stringTable.strings[Number(i)] };
}

describe('parseLuaFrame', () => {
  it.each([
    ['heavy (/app/work.lua:12)', { name: 'heavy', chunk: '/app/work.lua', line: 12 }],
    ['(/app/work.lua:3)', { name: '', chunk: '/app/work.lua', line: 3 }],
    [
      'content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)',
      { name: 'content_by_lua(nginx.conf:40)', chunk: 'content_by_lua(nginx.conf:40)', line: 1 },
    ],
    ['(content_by_lua(nginx.conf:40):7)', { name: '', chunk: 'content_by_lua(nginx.conf:40)', line: 7 }],
    ['M.f (/a b/x.lua:9)', { name: 'M.f', chunk: '/a b/x.lua', line: 9 }],
    // stapxx (lj-lua-stacks, ngx-sample-lua-bt) frames, collapsed
    ['@/app/work.lua:12', { name: '', chunk: '/app/work.lua', line: 12 }],
    ['T:@/app/work.lua:30', { name: '', chunk: '/app/work.lua', line: 30 }],
    ['=content_by_lua(nginx.conf:40):3', { name: '', chunk: 'content_by_lua(nginx.conf:40)', line: 3 }],
  ])('%s', (frame, parts) => {
    expect(parseLuaFrame(frame)).toEqual(parts);
  });

  it.each(['main', 'string.format', '[GC]', 'do_epoll_wait_[k]', 'foo(int:3)', 'C:ngx_http_lua_ngx_say', 'builtin#21', '@nolines'])('%s is not Lua', (frame) => {
    expect(parseLuaFrame(frame)).toBeNull();
  });
});

describe('encodePprof', () => {
  const buf = encodePprof(small, meta);

  it('is gzipped and deterministic', () => {
    expect([buf[0], buf[1]]).toEqual([0x1f, 0x8b]);
    expect(encodePprof([...small].reverse(), meta).equals(buf)).toBe(true);
  });

  it('has the sample types, period and times', () => {
    const { profile, str } = decodeRaw(buf);
    expect(profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`)).toEqual([
      'samples/count',
      'cpu/nanoseconds',
    ]);
    expect(`${str(profile.periodType!.type)}/${str(profile.periodType!.unit)}`).toBe('cpu/nanoseconds');
    expect(Number(profile.period)).toBe(10101010); // round(1e9 / 99)
    expect(str(profile.defaultSampleType)).toBe('cpu');
    expect(BigInt(profile.durationNanos)).toBe(30_000_000_000n);
    expect(BigInt(profile.timeNanos)).toBe(1_700_000_000_000_000_000n);
    expect(profile.stringTable.strings[0]).toBe('');
  });

  it('has one function and one location per unique frame, numbered root first', () => {
    const { profile, str } = decodeRaw(buf);
    const fns = profile.function.map((f) => [Number(f.id), str(f.name), str(f.filename), Number(f.startLine)]);
    expect(fns).toEqual([
      [1, 'nginx: worker process', '', 0],
      [2, 'ngx_worker_process_cycle', '', 0],
      [3, '[libfoo.so+0x12]', '', 0],
      [4, '[unknown]', '', 0],
      [5, 'ngx_process_events_and_timers', '', 0],
      [6, 'ngx_epoll_process_events', '', 0],
      [7, 'epoll_wait', '', 0],
      [8, 'entry_SYSCALL_64_after_hwframe_[k]', '', 0],
      [9, 'do_epoll_wait_[k]', '', 0],
      [10, 'ngx_http_lua_content_handler', '', 0],
      [11, 'lua_resume', '', 0],
      [12, '[JIT compiler]', '', 0],
      [13, 'content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)', 'content_by_lua(nginx.conf:40)', 1],
      [14, '[GC]', '', 0],
      [15, 'handler (/app/routes.lua:10)', '/app/routes.lua', 10],
      [16, `(/app/<tmpl> "a" & 'b'.lua:3)`, `/app/<tmpl> "a" & 'b'.lua`, 3],
      [17, 'heavy (/app/work.lua:12)', '/app/work.lua', 12],
      [18, 'string.format', '', 0],
    ]);
    for (const f of profile.function) expect(f.systemName).toBe(f.name);
    expect(profile.location.map((l) => [Number(l.id), l.line.map((x) => [Number(x.functionId), Number(x.line)])])).toEqual(
      profile.function.map((f) => [Number(f.id), [[Number(f.id), Number(f.startLine)]]]),
    );
  });

  it('lists sample locations leaf first, with samples and cpu time', () => {
    const { profile } = decodeRaw(buf);
    const samples = profile.sample.map((s) => [s.locationId.map(Number), s.value.map(Number)]);
    expect(samples).toEqual([
      [[4, 3, 2, 1], [1, 10101010]],
      [[9, 8, 7, 6, 5, 2, 1], [7, 70707071]],
      [[12, 11, 10, 5, 2, 1], [2, 20202020]],
      [[14, 13, 11, 10, 5, 2, 1], [3, 30303030]],
      [[16, 15, 13, 11, 10, 5, 2, 1], [5, 50505051]],
      [[17, 15, 13, 11, 10, 5, 2, 1], [20, 202020202]],
      [[18, 17, 15, 13, 11, 10, 5, 2, 1], [9, 90909091]],
    ]);
  });

  it('round-trips through decodePprof', () => {
    expect(foldStacks(decodePprof(buf))).toBe(foldStacks(small));
    // Not gzipped works too.
    expect(decodePprof(gunzipSync(buf))).toEqual(decodePprof(buf));
  });

  it('merges identical stacks and drops empty ones', () => {
    const stacks: Stack[] = [
      { frames: ['main', 'f'], count: 2 },
      { frames: ['main', 'f'], count: 3 },
      { frames: ['main'], count: 0 },
      { frames: [], count: 4 },
    ];
    const out = encodePprof(stacks, { frequencyHz: 1000, durationNs: 1n });
    expect(decodePprof(out)).toEqual([{ frames: ['main', 'f'], count: 5 }]);
    const { profile } = decodeRaw(out);
    expect(profile.sample[0].value.map(Number)).toEqual([5, 5_000_000]);
    expect(Number(profile.timeNanos)).toBe(0);
    expect(profile.function).toHaveLength(2);
  });

  it('encodes an empty profile', () => {
    const out = encodePprof([], { frequencyHz: 49, durationNs: 0n });
    expect(decodePprof(out)).toEqual([]);
    expect(decodeRaw(out).profile.sampleType).toHaveLength(2);
  });

  it('validates its input', () => {
    expect(() => encodePprof(small, { frequencyHz: 0, durationNs: 1n })).toThrow(RangeError);
    expect(() => encodePprof(small, { frequencyHz: Number.NaN, durationNs: 1n })).toThrow(RangeError);
    expect(() => encodePprof(small, { frequencyHz: 99, durationNs: -1n })).toThrow(RangeError);
    expect(() => encodePprof([{ frames: ['a'], count: 1.5 }], meta)).toThrow(RangeError);
    expect(() => encodePprof([{ frames: ['a'], count: -1 }], meta)).toThrow(RangeError);
  });
});
