import { describe, expect, it } from 'vitest';
import { renderDiffSummaryMarkdown, summarizeDiff } from '../../src/report/diff.js';
import {
  DEFAULT_MIN_SAMPLES,
  gateLogLine,
  diffPlugins,
  judgeDiff,
  renderGateMarkdown,
  renderGatedDiffSummaryJson,
  type GateThresholds,
} from '../../src/report/gate.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';

/** The gate on functions only: its verdict and its functions part. */
const judge = (before: Stack[], after: Stack[], t: Partial<GateThresholds> = {}) => {
  const r = judgeDiff(mergeIdentical(before), mergeIdentical(after), { functionPp: 2, minSamples: DEFAULT_MIN_SAMPLES, ...t });
  return { ...r, ...r.functions! };
};

/** 1000 samples: `f` with `f` samples under main, the rest in `g`. */
const run = (f: number): Stack[] => [
  { frames: ['main', 'f'], count: f },
  { frames: ['main', 'g'], count: 1000 - f },
];

describe('judgeFunctions: the threshold', () => {
  it('fails a function whose share grew 2.1 pp with a 2 pp threshold', () => {
    const r = judge(run(100), run(121));
    expect(r.verdict).toBe('fail');
    expect(r.offending.map((f) => [f.name, f.crossed, f.grewPp])).toEqual([['f', ['self', 'total'], 2.1]]);
    expect(r.callers).toEqual([]);
  });

  it('passes a function whose share grew 1.9 pp, and one that grew exactly the threshold', () => {
    expect(judge(run(100), run(119)).verdict).toBe('pass');
    const exact = judge(run(100), run(120));
    expect(exact.offending).toEqual([]);
    expect(exact.verdict).toBe('pass');
  });

  it('compares shares, not counts: a longer run with the same shares passes', () => {
    const double = run(100).map((s) => ({ ...s, count: s.count * 2 }));
    const r = judge(run(100), double, { functionPp: 0.01 });
    expect(r.verdict).toBe('pass');
    expect([r.beforeSamples, r.afterSamples]).toEqual([1000, 2000]);
  });

  it('judges growth only: a function that shrank is never named', () => {
    const r = judge(run(300), run(100)); // f -20 pp, g +20 pp
    expect(r.verdict).toBe('fail');
    expect(r.offending.map((f) => f.name)).toEqual(['g']);
    expect(judge(run(100), run(100), { functionPp: 0.001 }).verdict).toBe('pass');
  });
});

describe('judgeFunctions: --min-samples', () => {
  // 100 samples a run: f goes from 5 to 10 samples, +5 pp.
  const small = (f: number): Stack[] => [
    { frames: ['main', 'f'], count: f },
    { frames: ['main', 'g'], count: 100 - f },
  ];

  it('does not judge a share with fewer samples than the floor in both runs', () => {
    const r = judge(small(5), small(10), { minSamples: 11 });
    expect(r.verdict).toBe('pass');
    expect(r.offending).toEqual([]);
    expect(r.tooFewSamples.map((f) => [f.name, f.crossed])).toEqual([['f', ['self', 'total']]]);
    expect(r.judged).toBe(2); // main and g
    expect(r.notJudged).toBe(1);
  });

  it('judges it when one run reaches the floor', () => {
    const r = judge(small(5), small(10), { minSamples: 10 });
    expect(r.verdict).toBe('fail');
    expect(r.offending.map((f) => f.name)).toEqual(['f']);
    expect(r.tooFewSamples).toEqual([]);
  });

  it('judges self and total each on their own counts', () => {
    // f's self samples stay under the floor, its total (with its callee h) does not.
    const before: Stack[] = [
      { frames: ['main', 'f'], count: 5 },
      { frames: ['main', 'f', 'h'], count: 40 },
      { frames: ['main', 'g'], count: 955 },
    ];
    const after: Stack[] = [
      { frames: ['main', 'f'], count: 29 },
      { frames: ['main', 'f', 'h'], count: 40 },
      { frames: ['main', 'g'], count: 931 },
    ];
    const r = judge(before, after, { minSamples: 30 });
    expect(r.offending.map((f) => [f.name, f.crossed])).toEqual([['f', ['total']]]);
  });

  it('has a default that is 1 pp of a 30 s run at 99 Hz and more than 5 standard errors from zero', () => {
    expect(DEFAULT_MIN_SAMPLES).toBe(Math.round(0.01 * 99 * 30));
    expect(Math.sqrt(DEFAULT_MIN_SAMPLES)).toBeGreaterThan(5);
  });

  it('rejects bad thresholds', () => {
    expect(() => judge(run(1), run(1), { functionPp: 0 })).toThrow(RangeError);
    expect(() => judge(run(1), run(1), { functionPp: Number.NaN })).toThrow(RangeError);
    expect(() => judge(run(1), run(1), { functionPp: 101 })).toThrow(RangeError);
    expect(() => judge(run(1), run(1), { minSamples: 1.5 })).toThrow(RangeError);
    expect(() => judge(run(1), run(1), { functionPp: undefined })).toThrow('gate needs functionPp, pluginPp or samplesRatio');
    expect(() => judge(run(1), run(1), { pluginPp: -2 })).toThrow(RangeError);
  });
});

describe('judgeFunctions: which functions are named', () => {
  const three = (a: number, b: number, c: number): Stack[] => [
    { frames: ['main', 'a'], count: a },
    { frames: ['main', 'b'], count: b },
    { frames: ['main', 'c'], count: c },
    { frames: ['main', 'idle'], count: 1000 - a - b - c },
  ];

  it('lists offenders largest growth first, ties by name', () => {
    const r = judge(three(100, 100, 100), three(130, 150, 130));
    expect(r.offending.map((f) => [f.name, f.grewPp])).toEqual([
      ['b', 5],
      ['a', 3],
      ['c', 3],
    ]);
  });

  it('names a slower function, not the callers whose total grew with it', () => {
    const stacks = (slow: number): Stack[] => [
      { frames: ['main', 'handler', 'route', 'slow'], count: slow },
      { frames: ['main', 'handler', 'route', 'fast'], count: 200 },
      { frames: ['main', 'epoll_wait'], count: 1000 - 200 - slow },
    ];
    const r = judge(stacks(200), stacks(260));
    expect(r.verdict).toBe('fail');
    expect(r.offending.map((f) => f.name)).toEqual(['slow']);
    expect(r.callers.map((f) => [f.name, f.crossed])).toEqual([
      ['handler', ['total']],
      ['route', ['total']],
    ]);
  });

  it('still names a caller that grew past the threshold beside its slower callee', () => {
    const stacks = (slow: number, other: number): Stack[] => [
      { frames: ['main', 'route', 'slow'], count: slow },
      { frames: ['main', 'route', 'other'], count: other },
      { frames: ['main', 'idle'], count: 1000 - slow - other },
    ];
    // slow +6 pp; other +1.5 pp, under the threshold, but route grew 1.5 pp outside slow... not enough:
    expect(judge(stacks(100, 100), stacks(160, 115)).offending.map((f) => f.name)).toEqual(['slow']);
    // ...and here route grew 3 pp outside slow (other +3 pp crosses on its own: it is named too).
    const r = judge(stacks(100, 100), stacks(160, 130));
    expect(r.offending.map((f) => f.name)).toEqual(['slow', 'other']);
    // Two callees each under the threshold: the caller that grew through both is the one named.
    const both = judge(stacks(100, 100), stacks(115, 115));
    expect(both.offending.map((f) => [f.name, f.grewPp])).toEqual([['route', 3]]);
  });
});

describe('the gate in the summaries', () => {
  const before = mergeIdentical(run(100));
  const after = mergeIdentical(run(130));
  const fail = judgeDiff(before, after, { functionPp: 2, minSamples: 30 });
  const pass = judgeDiff(before, before, { functionPp: 2, minSamples: 30 });

  it('puts the verdict and the offending functions first in the Markdown', () => {
    const md = renderDiffSummaryMarkdown(summarizeDiff(before, after), renderGateMarkdown(fail));
    const lines = md.split('\n');
    expect(lines[0]).toBe('### apisix-profile: differential');
    expect(lines[2]).toBe('**✗ Gate failed:** 1 function grew by more than 2 pp (self or total share of its run), largest first.');
    expect(lines[6]).toBe('| 1 | `f` | **self +3.00 pp** | 10.00% → 13.00% (+3.00 pp) | 10.00% → 13.00% (+3.00 pp) |');
    expect(md).toContain('Gate: `--fail-on-function 2` `--min-samples 30` · 3 functions judged, 0 functions with fewer than 30 samples in both runs not judged.');
    expect(md.indexOf('Gate failed')).toBeLessThan(md.indexOf('**Grew (self share)**'));
  });

  it('says when it passed', () => {
    expect(renderGateMarkdown(pass).split('\n')[0]).toBe("**✓ Gate passed:** no function's self or total share grew by more than 2 pp.");
    expect(gateLogLine(pass)).toBe(
      'gate passed: no function grew by more than 2 pp (3 functions judged, 0 with fewer than 30 samples in both runs not judged)',
    );
    expect(gateLogLine(fail)).toBe('gate failed: 1 function grew by more than 2 pp: f (self +3.00 pp)');
  });

  it('carries the verdict first in the JSON', () => {
    const json = JSON.parse(renderGatedDiffSummaryJson(summarizeDiff(before, after), fail));
    expect(Object.keys(json)[0]).toBe('verdict');
    expect(json.verdict).toBe('fail');
    expect(json.gate.minSamples).toBe(30);
    expect(json.gate.functions.thresholdPp).toBe(2);
    expect(json.gate.functions.offending.map((f: { name: string }) => f.name)).toEqual(['f']);
    expect(json.gate.plugins).toBeUndefined();
    expect(json.grew.map((f: { name: string }) => f.name)).toEqual(['f']);
  });

  it('leaves the Markdown as it was without a gate', () => {
    const s = summarizeDiff(before, after);
    expect(renderDiffSummaryMarkdown(s, '')).toBe(renderDiffSummaryMarkdown(s));
    expect(renderDiffSummaryMarkdown(s).split('\n')[2]).toMatch(/^before: /);
  });
});

describe('the plugin gate', () => {
  const plugin = (name: string, line = 10) => `_M.access (/usr/local/apisix/apisix/plugins/${name}.lua:${line})`;
  const stacks = (auth: number, limit: number): Stack[] => [
    { frames: ['main', 'ngx_http_lua_access_handler', plugin('key-auth'), 'string.find'], count: auth },
    { frames: ['main', 'ngx_http_lua_access_handler', plugin('limit-count')], count: limit },
    { frames: ['main', 'epoll_wait'], count: 1000 - auth - limit },
  ];
  const judgePlugins = (before: Stack[], after: Stack[], pluginPp: number, functionPp?: number) =>
    judgeDiff(mergeIdentical(before), mergeIdentical(after), { pluginPp, functionPp, minSamples: 30 });

  it('counts a plugin\'s self and total shares from its Lua frames', () => {
    const d = diffPlugins(mergeIdentical(stacks(100, 50)), mergeIdentical(stacks(130, 50)));
    expect(d.changes.map((c) => [c.name, c.before.self, c.after.total, c.selfDeltaPp])).toEqual([
      ['key-auth', 100, 130, 3],
      ['limit-count', 50, 50, 0],
    ]);
  });

  it('fails on a plugin that grew 2.1 pp, passes one that grew 1.9 pp', () => {
    const fail = judgePlugins(stacks(100, 50), stacks(121, 50), 2);
    expect(fail.verdict).toBe('fail');
    expect(fail.functions).toBeUndefined();
    expect(fail.plugins!.offending.map((f) => [f.name, f.grewPp])).toEqual([['key-auth', 2.1]]);
    expect(judgePlugins(stacks(100, 50), stacks(119, 50), 2).verdict).toBe('pass');
  });

  it('leads the Markdown with both verdicts when both thresholds are set', () => {
    const r = judgePlugins(stacks(100, 50), stacks(140, 50), 2, 10);
    expect(r.functions!.offending).toEqual([]);
    const md = renderGateMarkdown(r);
    expect(md.split('\n')[0]).toBe('**✗ Gate failed:** 1 plugin grew by more than 2 pp (self or total share of its run), largest first.');
    expect(md).toContain('| 1 | `key-auth` | **self +4.00 pp** |');
    expect(md).toContain('Gate: `--fail-on-function 10` `--fail-on-plugin 2` `--min-samples 30`');
    expect(gateLogLine(r)).toBe('gate failed: 1 plugin grew by more than 2 pp: key-auth (self +4.00 pp)');
  });
});
