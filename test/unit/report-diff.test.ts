import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as diff from '../../src/report/diff.js';
import { diffColor, foldDiff, renderDiffSummaryJson, renderDiffSummaryMarkdown } from '../../src/report/diff.js';
import { parseFolded } from '../../src/report/fold.js';
import { renderFlameGraph } from '../../src/report/flamegraph/svg.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';
import { expectGolden } from '../support/golden.js';

// As the CLI does: each side's stacks are merged once (mergeIdentical), then compared.
const diffStacks = (before: Stack[], after: Stack[]) => diff.diffStacks(mergeIdentical(before), mergeIdentical(after));
const renderDiffFlameGraph = (before: Stack[], after: Stack[], options?: diff.DiffFlameGraphOptions) =>
  diff.renderDiffFlameGraph(mergeIdentical(before), mergeIdentical(after), options);
const summarizeDiff = (before: Stack[], after: Stack[], options?: diff.DiffSummaryOptions) =>
  diff.summarizeDiff(mergeIdentical(before), mergeIdentical(after), options);

const fixture = (name: string): URL => new URL(`../../fixtures/report/${name}`, import.meta.url);
const small = parseFolded(readFileSync(fixture('small.folded'), 'utf8'));
const smallAfter = parseFolded(readFileSync(fixture('small-after.folded'), 'utf8'));

function unescape(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

interface DrawnFrame {
  title: string;
  fill: string;
  depth: number;
  x: number;
  w: number;
}

/** The frame groups of a rendered flame graph, in document order. */
function drawnFrames(svg: string): DrawnFrame[] {
  const re =
    /<g class="f" data-x="(\d+)" data-w="(\d+)" data-d="(\d+)"><title>([^<]*)<\/title><rect [^>]*fill="(#[0-9a-f]{6})"/g;
  return [...svg.matchAll(re)].map((m) => ({
    title: unescape(m[4]),
    fill: m[5],
    depth: Number(m[3]),
    x: Number(m[1]),
    w: Number(m[2]),
  }));
}

/** What the embedded zoom script recovers as the frame name from a title. */
const scriptName = (title: string): string => title.slice(0, title.lastIndexOf(' ('));

describe('diffStacks', () => {
  const before: Stack[] = [
    { frames: ['a', 'b'], count: 6 },
    { frames: ['a', 'c'], count: 4 },
  ];
  const after: Stack[] = [
    { frames: ['a', 'd'], count: 10 },
    { frames: ['a', 'b'], count: 4 },
    { frames: ['a', 'b'], count: 6 },
  ];

  it('pairs stacks and normalises each side by its total', () => {
    expect(diffStacks(before, after)).toEqual([
      { frames: ['a', 'b'], before: 6, after: 10, beforeShare: 0.6, afterShare: 0.5, deltaPp: -10 },
      { frames: ['a', 'c'], before: 4, after: 0, beforeShare: 0.4, afterShare: 0, deltaPp: -40 },
      { frames: ['a', 'd'], before: 0, after: 10, beforeShare: 0, afterShare: 0.5, deltaPp: 50 },
    ]);
  });

  it('gives exactly zero change for equal shares', () => {
    const twice = small.map((s) => ({ frames: s.frames, count: s.count * 2 }));
    const d = diffStacks(small, twice);
    expect(d).toHaveLength(7);
    for (const s of d) {
      expect(s.deltaPp).toBe(0);
      expect(s.after).toBe(2 * s.before);
    }
  });

  it('handles an empty side', () => {
    expect(diffStacks([], before)).toEqual([
      { frames: ['a', 'b'], before: 0, after: 6, beforeShare: 0, afterShare: 0.6, deltaPp: 60 },
      { frames: ['a', 'c'], before: 0, after: 4, beforeShare: 0, afterShare: 0.4, deltaPp: 40 },
    ]);
    expect(diffStacks([], [])).toEqual([]);
    expect(() => diffStacks([{ frames: ['a'], count: -1 }], [])).toThrow(RangeError);
  });

  it('matches the fixtures', () => {
    const d = diffStacks(small, smallAfter);
    const heavy = d.find((s) => s.frames[s.frames.length - 1] === 'heavy (/app/work.lua:12)')!;
    expect([heavy.before, heavy.after]).toEqual([20, 30]);
    expect(heavy.deltaPp).toBeCloseTo(((30 * 47 - 20 * 50) * 100) / (47 * 50), 12);
    expect(d.map((s) => [s.before, s.after])).toEqual([
      [1, 0], // [libfoo.so+0x12];[unknown]
      [7, 5], // epoll
      [2, 2], // [JIT compiler]
      [3, 3], // [GC]
      [5, 0], // (/app/<tmpl> ...)
      [0, 6], // cache_get
      [20, 30], // heavy
      [9, 4], // heavy;string.format
    ]);
  });
});

describe('foldDiff', () => {
  it('writes two-column folded stacks, sorted, and refuses a name not made safe', () => {
    const d = diffStacks(
      [
        { frames: ['a', 'b:c'], count: 6 },
        { frames: ['a'], count: 1 },
      ],
      [{ frames: ['a', 'b:c'], count: 3 }],
    );
    expect(foldDiff(d)).toBe('a 1 0\na;b:c 6 3\n');
    expect(() => foldDiff(diffStacks([{ frames: ['a', 'b;c'], count: 1 }], []))).toThrow(/not made safe/);
    expect(foldDiff([])).toBe('');
  });
});

describe('diffColor', () => {
  it('is grey when unchanged, red for growth, blue for shrinkage, saturating', () => {
    expect(diffColor(0)).toBe('#ececec');
    expect(diffColor(2.5)).toBe('#e89390');
    expect(diffColor(-2.5)).toBe('#9db5ec');
    expect(diffColor(5)).toBe('#e43a34');
    expect(diffColor(50)).toBe('#e43a34');
    expect(diffColor(-5)).toBe('#4e7eec');
    expect(diffColor(-99)).toBe('#4e7eec');
    expect(diffColor(1, 1)).toBe('#e43a34');
    expect(diffColor(0.5, 1)).toBe(diffColor(2.5));
  });
});

describe('renderDiffFlameGraph', () => {
  const before: Stack[] = [
    { frames: ['a', 'b'], count: 6 },
    { frames: ['a', 'c'], count: 4 },
  ];
  const after: Stack[] = [
    { frames: ['a', 'b'], count: 10 },
    { frames: ['a', 'd'], count: 10 },
  ];

  it('lays out the after run and colours frames by the change of their total share', () => {
    const frames = drawnFrames(renderDiffFlameGraph(before, after, { width: 220 }));
    expect(frames).toEqual([
      { title: 'all (before 100.00%, after 100.00%, change +0.00 pp)', fill: '#ececec', depth: 0, x: 0, w: 20 },
      { title: 'a (before 100.00%, after 100.00%, change +0.00 pp)', fill: '#ececec', depth: 1, x: 0, w: 20 },
      { title: 'b (before 60.00%, after 50.00%, change -10.00 pp)', fill: '#4e7eec', depth: 2, x: 0, w: 10 },
      { title: 'd (before 0.00%, after 50.00%, change +50.00 pp)', fill: '#e43a34', depth: 2, x: 10, w: 10 },
    ]);
  });

  it('names the counts in the subtitle with the unit given', () => {
    expect(renderDiffFlameGraph(before, after, { unit: 'µs' })).toContain('before 10 µs, after 20;');
    expect(renderDiffFlameGraph(before, after)).toContain('before 10 samples, after 20;');
  });

  it('uses the saturation option and validates it', () => {
    const frames = drawnFrames(renderDiffFlameGraph(before, after, { saturatePp: 20 }));
    expect(frames[2].fill).toBe(diffColor(-10, 20));
    expect(frames[2].fill).toBe(diffColor(-2.5));
    expect(() => renderDiffFlameGraph(before, after, { saturatePp: 0 })).toThrow(RangeError);
    expect(() => renderDiffFlameGraph(before, after, { width: 0 })).toThrow(RangeError);
  });

  it('says in the subtitle what share of before is not drawn', () => {
    const svg = renderDiffFlameGraph(before, after, { subtitle: 'run 1 &amp; run 2' });
    expect(svg).toContain(
      '>run 1 &amp;amp; run 2 · before 10 samples, after 20; red grew, blue shrank (full colour at 5 pp);' +
        ' not drawn: 40.00% of before (call paths absent after)</text>',
    );
    expect(svg).toContain('>apisix-profile: differential</text>');
    expect(renderDiffFlameGraph(before, after, { title: 'T' })).toContain('>T</text>');
  });

  it('keeps titles readable by the zoom script', () => {
    const frames = drawnFrames(renderDiffFlameGraph(small, smallAfter));
    expect(frames.length).toBeGreaterThan(10);
    const names = frames.map((f) => scriptName(f.title));
    expect(names).toContain('content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)');
    expect(names).toContain('cache_get (/app/routes.lua:40)');
    for (const f of frames) expect(f.title).toMatch(/ \(before \d+\.\d\d%, after \d+\.\d\d%, change [+-]\d+\.\d\d pp\)$/);
  });

  it('draws the same frames, widths and positions as the plain flame graph of after', () => {
    const plain = drawnFrames(renderFlameGraph(smallAfter));
    const diff = drawnFrames(renderDiffFlameGraph(small, smallAfter));
    expect(diff.map(({ depth, x, w }) => ({ depth, x, w }))).toEqual(plain.map(({ depth, x, w }) => ({ depth, x, w })));
  });

  it('reports the fixture changes', () => {
    const svg = renderDiffFlameGraph(small, smallAfter, { title: 'small', subtitle: 'before → after' });
    const byName = new Map(drawnFrames(svg).map((f) => [scriptName(f.title), f]));
    expect(byName.get('heavy (/app/work.lua:12)')!.title).toBe(
      'heavy (/app/work.lua:12) (before 61.70%, after 68.00%, change +6.30 pp)',
    );
    expect(byName.get('heavy (/app/work.lua:12)')!.fill).toBe('#e43a34');
    expect(byName.get('string.format')!.title).toBe('string.format (before 19.15%, after 8.00%, change -11.15 pp)');
    expect(byName.get('cache_get (/app/routes.lua:40)')!.title).toBe(
      'cache_get (/app/routes.lua:40) (before 0.00%, after 12.00%, change +12.00 pp)',
    );
    expect(byName.get('[GC]')!.title).toBe('[GC] (before 6.38%, after 6.00%, change -0.38 pp)');
    expect(byName.get('ngx_worker_process_cycle')!.fill).toBe('#ececec');
    expect(byName.has('[unknown]')).toBe(false);
    // [libfoo.so+0x12];[unknown] (1) and the template frame (5) of 47 are gone.
    expect(svg).toContain('not drawn: 12.77% of before (call paths absent after)');
  });

  it('says "no samples" when after is empty, and treats an empty before as all new', () => {
    expect(renderDiffFlameGraph(before, [])).toContain('>no samples</text>');
    expect(renderDiffFlameGraph(before, [])).toContain('not drawn: 100.00% of before');
    const frames = drawnFrames(renderDiffFlameGraph([], after));
    expect(frames[0].title).toBe('all (before 0.00%, after 100.00%, change +100.00 pp)');
    expect(new Set(frames.map((f) => f.fill))).toEqual(new Set(['#e43a34']));
  });

  it('is deterministic and matches fixtures/report/small-diff.svg (BLESS=1 rewrites it)', () => {
    const out = renderDiffFlameGraph(small, smallAfter, { title: 'small', subtitle: 'small.folded → small-after.folded' });
    expect(renderDiffFlameGraph([...small].reverse(), [...smallAfter].reverse(), {
      title: 'small',
      subtitle: 'small.folded → small-after.folded',
    })).toBe(out);
    expectGolden('small-diff.svg', out);
  });
});

describe('summarizeDiff', () => {
  it('ranks functions by the change of their self share, both ways', () => {
    const s = summarizeDiff(small, smallAfter, { title: 'small' });
    expect(s.title).toBe('small');
    expect([s.beforeSamples, s.afterSamples]).toEqual([47, 50]);
    expect(s.grew.map((c) => [c.name, Number(c.selfDeltaPp.toFixed(2)), Number(c.totalDeltaPp.toFixed(2))])).toEqual([
      ['heavy (/app/work.lua:12)', 17.45, 6.3],
      ['cache_get (/app/routes.lua:40)', 12, 12],
    ]);
    expect(s.shrank.map((c) => c.name)).toEqual([
      'string.format',
      `(/app/<tmpl> "a" & 'b'.lua:3)`,
      'do_epoll_wait_[k]',
      '[unknown]',
      '[GC]',
      '[JIT compiler]',
    ]);
    const heavy = s.grew[0];
    expect(heavy.before).toEqual({ self: 20, total: 29, selfShare: 20 / 47, totalShare: 29 / 47 });
    expect(heavy.after).toEqual({ self: 30, total: 34, selfShare: 30 / 50, totalShare: 34 / 50 });
    const cache = s.grew[1];
    expect(cache.before).toEqual({ self: 0, total: 0, selfShare: 0, totalShare: 0 });
  });

  it('leaves out unchanged functions, ties by name, and honours top', () => {
    const before: Stack[] = [
      { frames: ['a', 'x'], count: 1 },
      { frames: ['a', 'y'], count: 1 },
      { frames: ['a', 'z'], count: 2 },
    ];
    const after: Stack[] = [
      { frames: ['a', 'y'], count: 2 },
      { frames: ['a', 'x'], count: 2 },
      { frames: ['a', 'z'], count: 0 },
    ];
    const s = summarizeDiff(before, after, { top: 1 });
    expect(s.title).toBe('apisix-profile: differential');
    expect(s.grew.map((c) => c.name)).toEqual(['x']);
    expect(s.shrank.map((c) => [c.name, c.selfDeltaPp])).toEqual([['z', -50]]);
    expect(summarizeDiff(small, small).grew).toEqual([]);
    expect(summarizeDiff(small, small).shrank).toEqual([]);
    expect(() => summarizeDiff(small, small, { top: -1 })).toThrow(RangeError);
  });

  it('renders Markdown and JSON', () => {
    const s = summarizeDiff(small, smallAfter, { title: 'small', top: 2 });
    expect(renderDiffSummaryMarkdown(s)).toBe(
      [
        '### small',
        '',
        "before: **47 samples** · after: **50 samples** · changes are in percentage points (pp) of each run's total",
        '',
        '**Grew (self share)**',
        '',
        '| # | Function | Self before | Self after | Self change | Total change |',
        '|---:|---|---:|---:|---:|---:|',
        '| 1 | `heavy (/app/work.lua:12)` | 42.55% | 60.00% | +17.45 pp | +6.30 pp |',
        '| 2 | `cache_get (/app/routes.lua:40)` | 0.00% | 12.00% | +12.00 pp | +12.00 pp |',
        '',
        '**Shrank (self share)**',
        '',
        '| # | Function | Self before | Self after | Self change | Total change |',
        '|---:|---|---:|---:|---:|---:|',
        '| 1 | `string.format` | 19.15% | 8.00% | -11.15 pp | -11.15 pp |',
        `| 2 | \`(/app/<tmpl> "a" & 'b'.lua:3)\` | 10.64% | 0.00% | -10.64 pp | -10.64 pp |`,
        '',
      ].join('\n'),
    );
    expect(renderDiffSummaryMarkdown(summarizeDiff(small, small))).toContain('**Grew (self share)**\n\nNone.');
    expect(JSON.parse(renderDiffSummaryJson(s))).toEqual(JSON.parse(JSON.stringify(s)));
  });

  it('names µs, not samples, for off-CPU and wall profiles, and leaves CPU summaries as they were', () => {
    const time = summarizeDiff(small, smallAfter, { unit: 'µs' });
    expect(time.unit).toBe('µs');
    expect(renderDiffSummaryMarkdown(time)).toMatch(/^before: \*\*\d+ µs\*\* · after: \*\*\d+ µs\*\* · /m);
    expect(JSON.parse(renderDiffSummaryJson(time)).unit).toBe('µs');
    const cpu = summarizeDiff(small, smallAfter, { unit: 'samples' });
    expect('unit' in cpu).toBe(false);
    expect(renderDiffSummaryMarkdown(cpu)).toMatch(/^before: \*\*\d+ samples\*\*/m);
  });
});
