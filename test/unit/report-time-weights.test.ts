// Off-CPU and wall profiles count µs: every output says so in its own terms.
import { describe, expect, it } from 'vitest';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { renderFlameGraph } from '../../src/report/flamegraph/svg.js';
import { decodePprof, encodePprof } from '../../src/report/pprof.js';
import { toSpeedscope } from '../../src/report/speedscope.js';
import { mergeIdentical } from '../../src/report/stack.js';
import { renderSummaryMarkdown, summarize, timeHeadline, type TimeTotals } from '../../src/report/summary.js';

const stacks = mergeIdentical([
  { frames: ['main', 'handler (/app/a.lua:3)', 'usleep'], count: 1500 },
  { frames: ['main', 'read'], count: 500 },
]);

const totals: TimeTotals = {
  kind: 'off_cpu',
  blockedUs: 2000,
  blockedInLuaUs: 1500,
  idleUs: 98000,
  idleIncluded: false,
  onCpuUs: 0,
  preemptedUs: 12,
  switchesBlocked: 40,
  switchesPreempted: 3,
  lostSwitches: 0,
};

function types(buf: Buffer): string[] {
  const p = Profile.decode(gunzipSync(buf));
  const text = p.stringTable.strings;
  return p.sampleType.map((t) => `${text[Number(t.type)]}/${text[Number(t.unit)]}`);
}

describe('time weights in the outputs', () => {
  it('pprof: one sample type off_cpu/nanoseconds or wall/nanoseconds, values in ns', () => {
    const off = encodePprof(stacks, { frequencyHz: 99, durationNs: 1n, time: 'off_cpu' });
    expect(types(off)).toEqual(['off_cpu/nanoseconds']);
    expect(decodePprof(off).map((s) => s.count).sort((a, b) => a - b)).toEqual([500_000, 1_500_000]);
    expect(types(encodePprof(stacks, { frequencyHz: 99, durationNs: 1n, time: 'wall' }))).toEqual(['wall/nanoseconds']);
    expect(types(encodePprof(stacks, { frequencyHz: 99, durationNs: 1n }))).toEqual(['samples/count', 'cpu/nanoseconds']);
  });

  it('speedscope: weights in seconds', () => {
    const file = toSpeedscope(stacks, { name: 'x', frequencyHz: 99, time: 'off_cpu' });
    expect(file.profiles[0].unit).toBe('seconds');
    expect(file.profiles[0].endValue).toBeCloseTo(0.002, 9);
  });

  it('flame graph: tooltips and the search line in µs', () => {
    const svg = renderFlameGraph(stacks, { unit: 'µs' });
    expect(svg).toContain('usleep (1500 µs, 75.00%)');
    expect(svg).toContain('data-unit="µs"');
    expect(renderFlameGraph(stacks)).not.toContain('data-unit="');
  });

  it('summary: idle and blocked shares at a glance, tables in µs', () => {
    const summary = summarize(stacks, { time: totals });
    expect(summary.time?.idleShare).toBeCloseTo(0.98, 9);
    expect(timeHeadline(summary.time!)).toBe('98.0% idle, 1.5% blocked in Lua, 0.5% blocked outside Lua');
    const md = renderSummaryMarkdown(summary);
    expect(md).toContain('**98.0% idle, 1.5% blocked in Lua, 0.5% blocked outside Lua**');
    expect(md).toContain('**2000 µs**');
    expect(md).toContain('**Blocked time by nginx phase**');
    expect(md).toContain('Top functions by self time');
    expect(renderSummaryMarkdown(summarize(stacks, { time: { ...totals, kind: 'wall', onCpuUs: 100000 } }))).toContain('on CPU');
    expect(summarize(stacks).time).toBeUndefined();
  });
});
