// Differential profiles: what changed between two runs (before/after a
// change). Counts are compared as shares of each run's total, so runs of
// different length or frequency compare fairly.

import { mergeStacks, type FrameNode } from './flamegraph/merge.js';
import { renderFrameTree, type FlameGraphOptions, type FramePainter } from './flamegraph/svg.js';
import { isSafeFrameName } from './frame.js';
import { byCodeUnits, checkCount, compareFrames, type Stack, type UniqueStacks } from './stack.js';
import { markdownCode, markdownText, summarize, type FunctionShare } from './summary.js';

/** One stack in either run, with its counts and shares on both sides. */
export interface DiffStack {
  frames: string[];
  /** Samples in the before run (0 if absent). */
  before: number;
  /** Samples in the after run (0 if absent). */
  after: number;
  /** before / before run's total, 0..1 (0 for an empty run). */
  beforeShare: number;
  /** after / after run's total, 0..1 (0 for an empty run). */
  afterShare: number;
  /** afterShare - beforeShare, in percentage points. */
  deltaPp: number;
}

function share(part: number, whole: number): number {
  return whole > 0 ? part / whole : 0;
}

/**
 * after/afterTotal - before/beforeTotal in percentage points, computed from
 * integer cross products so equal shares give exactly 0.
 */
function changePp(before: number, beforeTotal: number, after: number, afterTotal: number): number {
  if (beforeTotal > 0 && afterTotal > 0) {
    return ((after * beforeTotal - before * afterTotal) * 100) / (beforeTotal * afterTotal);
  }
  return (share(after, afterTotal) - share(before, beforeTotal)) * 100;
}

/**
 * Pair the stacks of two runs. Identical stacks within a run are merged;
 * stacks with a zero count or no frames are left out. The result holds
 * every stack seen in either run, sorted by frames.
 */
export function diffStacks(before: UniqueStacks, after: UniqueStacks): DiffStack[] {
  const b = before;
  const a = after;
  const beforeTotal = b.reduce((sum, s) => sum + s.count, 0);
  const afterTotal = a.reduce((sum, s) => sum + s.count, 0);
  const out: DiffStack[] = [];
  const push = (frames: string[], bc: number, ac: number): void => {
    const beforeShare = share(bc, beforeTotal);
    const afterShare = share(ac, afterTotal);
    const deltaPp = changePp(bc, beforeTotal, ac, afterTotal);
    out.push({ frames, before: bc, after: ac, beforeShare, afterShare, deltaPp });
  };
  // Both lists are sorted by frames: walk them side by side.
  let i = 0;
  let j = 0;
  while (i < b.length || j < a.length) {
    const c = i >= b.length ? 1 : j >= a.length ? -1 : compareFrames(b[i].frames, a[j].frames);
    if (c === 0) push(b[i].frames, b[i++].count, a[j++].count);
    else if (c < 0) push(b[i].frames, b[i++].count, 0);
    else push(a[j].frames, 0, a[j++].count);
  }
  return out;
}

/**
 * Differential folded stacks, one line per stack: `root;...;leaf before
 * after` with raw counts, the two-column format flamegraph.pl and inferno
 * read for their differential graphs. Sorted by the stack text.
 */
export function foldDiff(diff: DiffStack[]): string {
  // diffStacks pairs merged stacks: one line per stack already.
  const lines = diff.map((d) => {
    for (const frame of d.frames) {
      if (!isSafeFrameName(frame)) throw new Error(`frame name not made safe where it was made: ${JSON.stringify(frame)}`);
    }
    return `${d.frames.join(';')} ${d.before} ${d.after}\n`;
  });
  return lines.sort(byCodeUnits).join('');
}

export interface DiffFlameGraphOptions extends FlameGraphOptions {
  /** A change of this many percentage points or more gets the full colour. Default 5. */
  saturatePp?: number;
}

const DEFAULT_TITLE = 'apisix-profile: differential';
const DEFAULT_SATURATE_PP = 5;
const ROOT_NAME = 'all';

// Unchanged frames are light grey; growth fades to red, shrinkage to blue.
const NEUTRAL: readonly [number, number, number] = [236, 236, 236];
const GREW: readonly [number, number, number] = [228, 58, 52];
const SHRANK: readonly [number, number, number] = [78, 126, 236];

/**
 * Fill colour for a change of `deltaPp` percentage points: grey at 0, more
 * red for growth and more blue for shrinkage, in proportion to the size of
 * the change up to `saturatePp`.
 */
export function diffColor(deltaPp: number, saturatePp = DEFAULT_SATURATE_PP): string {
  const t = Math.min(1, Math.abs(deltaPp) / saturatePp);
  const target = deltaPp > 0 ? GREW : SHRANK;
  const hex = (k: number): string =>
    Math.round(NEUTRAL[k] + (target[k] - NEUTRAL[k]) * t)
      .toString(16)
      .padStart(2, '0');
  return `#${hex(0)}${hex(1)}${hex(2)}`;
}

/** A percentage with two decimals, e.g. "12.50". */
function pct(fraction: number): string {
  return (fraction * 100).toFixed(2);
}

/** Percentage points with a sign and two decimals; never "-0.00". */
function signedPp(deltaPp: number): string {
  const s = deltaPp.toFixed(2);
  return Number(s) === 0 ? '+0.00' : deltaPp > 0 ? `+${s}` : s;
}

function childrenByName(node: FrameNode | undefined): Map<string, FrameNode> {
  return new Map((node?.children ?? []).map((c) => [c.name, c]));
}

/** Pair every after node with the before node at the same call path. */
function matchNodes(after: FrameNode, before: FrameNode | undefined, out: Map<FrameNode, FrameNode | undefined>): void {
  out.set(after, before);
  const twins = childrenByName(before);
  for (const child of after.children) matchNodes(child, twins.get(child.name), out);
}

/** Samples of `before` under call paths that `after` does not have. */
function vanishedSamples(before: FrameNode, after: FrameNode): number {
  const twins = childrenByName(after);
  let sum = 0;
  for (const child of before.children) {
    const twin = twins.get(child.name);
    sum += twin ? vanishedSamples(child, twin) : child.total;
  }
  return sum;
}

/**
 * Render a differential flame graph: the after run's frames laid out as in
 * a plain flame graph (widths are after samples), each coloured by how its
 * total share changed from before to after at the same call path (red grew,
 * blue shrank, grey unchanged; see diffColor). Frames only in the before run
 * are not drawn; the subtitle says what share of the before run that was.
 * Tooltips read `name (before X%, after Y%, change +Z pp)`.
 */
export function renderDiffFlameGraph(before: UniqueStacks, after: UniqueStacks, options: DiffFlameGraphOptions = {}): string {
  const saturatePp = options.saturatePp ?? DEFAULT_SATURATE_PP;
  if (!(saturatePp > 0) || !Number.isFinite(saturatePp)) {
    throw new RangeError(`diff flame graph option saturatePp must be a number > 0, got ${String(saturatePp)}`);
  }
  const beforeRoot = mergeStacks(before, ROOT_NAME);
  const afterRoot = mergeStacks(after, ROOT_NAME);
  const beforeTotal = beforeRoot.total;
  const afterTotal = afterRoot.total;
  const twins = new Map<FrameNode, FrameNode | undefined>();
  matchNodes(afterRoot, beforeRoot, twins);

  const shares = (node: FrameNode): { b: number; a: number; deltaPp: number } => {
    const bc = twins.get(node)?.total ?? 0;
    return {
      b: share(bc, beforeTotal),
      a: share(node.total, afterTotal),
      deltaPp: changePp(bc, beforeTotal, node.total, afterTotal),
    };
  };
  const painter: FramePainter = {
    fill: (node) => diffColor(shares(node).deltaPp, saturatePp),
    info: (node) => {
      const { b, a, deltaPp } = shares(node);
      return `${node.name} (before ${pct(b)}%, after ${pct(a)}%, change ${signedPp(deltaPp)} pp)`;
    },
  };

  const vanished = share(vanishedSamples(beforeRoot, afterRoot), beforeTotal);
  const note =
    `before ${beforeTotal} ${options.unit ?? 'samples'}, after ${afterTotal}; red grew, blue shrank (full colour at ${saturatePp} pp);` +
    ` not drawn: ${pct(vanished)}% of before (call paths absent after)`;
  const subtitle = options.subtitle !== undefined ? `${options.subtitle} · ${note}` : note;
  return renderFrameTree(afterRoot, { ...options, title: options.title ?? DEFAULT_TITLE, subtitle }, painter);
}

/** One function's samples in both runs. */
export interface FunctionChange {
  /** The frame text, e.g. `heavy (/app/work.lua:12)`. */
  name: string;
  before: { self: number; total: number; selfShare: number; totalShare: number };
  after: { self: number; total: number; selfShare: number; totalShare: number };
  /** Change of the self share, in percentage points. */
  selfDeltaPp: number;
  /** Change of the total share, in percentage points. */
  totalDeltaPp: number;
}

export interface DiffSummary {
  title: string;
  /** What the counts are when not samples: `µs` for off-CPU and wall profiles. */
  unit?: string;
  beforeSamples: number;
  afterSamples: number;
  /** Self share grew: biggest growth first, ties by name. */
  grew: FunctionChange[];
  /** Self share shrank: biggest drop first, ties by name. */
  shrank: FunctionChange[];
}

export interface DiffSummaryOptions {
  /** Default "apisix-profile: differential". */
  title?: string;
  /** Length of each list. Default 15. */
  top?: number;
  /** What the counts are (countUnit): `samples` (default) or `µs`. */
  unit?: string;
}

/** Every function of either run with its counts and shares on both sides. */
export interface FunctionChanges {
  beforeSamples: number;
  afterSamples: number;
  /** One entry per function seen in either run, in no particular order. */
  changes: FunctionChange[];
}

/**
 * Every function (unique frame text) of either run, with its self and total
 * samples and shares in both runs and their change in percentage points.
 * The summaries list the extremes; the CI gate (gate.ts) judges them all.
 */
export function diffFunctions(before: UniqueStacks, after: UniqueStacks): FunctionChanges {
  const side = (stacks: readonly Stack[]) => {
    const s = summarize(stacks, { top: Number.MAX_SAFE_INTEGER });
    return { total: s.totalSamples, byName: new Map<string, FunctionShare>(s.topTotal.map((f) => [f.name, f])) };
  };
  const b = side(before);
  const a = side(after);
  const names = [...new Set([...b.byName.keys(), ...a.byName.keys()])];
  const none = { self: 0, total: 0, selfShare: 0, totalShare: 0 };
  const pick = (f: FunctionShare | undefined) =>
    f ? { self: f.self, total: f.total, selfShare: f.selfShare, totalShare: f.totalShare } : { ...none };
  const changes: FunctionChange[] = names.map((name) => {
    const bf = pick(b.byName.get(name));
    const af = pick(a.byName.get(name));
    return {
      name,
      before: bf,
      after: af,
      selfDeltaPp: changePp(bf.self, b.total, af.self, a.total),
      totalDeltaPp: changePp(bf.total, b.total, af.total, a.total),
    };
  });
  return { beforeSamples: b.total, afterSamples: a.total, changes };
}

/**
 * The functions whose self share changed most between two runs, as shares
 * of each run's own total (so runs of different length compare fairly).
 * A function is a unique frame text, as in the summary of one run.
 */
export function summarizeDiff(before: UniqueStacks, after: UniqueStacks, options: DiffSummaryOptions = {}): DiffSummary {
  const top = options.top ?? 15;
  checkCount(top, 'diff summary top');
  const { beforeSamples, afterSamples, changes } = diffFunctions(before, after);
  const grew = changes
    .filter((c) => c.selfDeltaPp > 0)
    .sort((x, y) => y.selfDeltaPp - x.selfDeltaPp || byCodeUnits(x.name, y.name))
    .slice(0, top);
  const shrank = changes
    .filter((c) => c.selfDeltaPp < 0)
    .sort((x, y) => x.selfDeltaPp - y.selfDeltaPp || byCodeUnits(x.name, y.name))
    .slice(0, top);
  const unit = options.unit !== undefined && options.unit !== 'samples' ? { unit: options.unit } : {};
  return { title: options.title ?? DEFAULT_TITLE, ...unit, beforeSamples, afterSamples, grew, shrank };
}

/** The diff summary as pretty-printed JSON, ending with a newline. */
export function renderDiffSummaryJson(summary: DiffSummary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

/**
 * Markdown for a CI job summary: the sample counts, then the functions whose
 * self share grew and shrank most, with their total-share change. `lead`
 * (Markdown, e.g. the gate's verdict) comes first, right under the heading.
 */
export function renderDiffSummaryMarkdown(summary: DiffSummary, lead = ''): string {
  const out: string[] = [`### ${markdownText(summary.title)}`, ''];
  if (lead.trim() !== '') out.push(lead.trimEnd(), '');
  out.push(
    `before: **${summary.beforeSamples} ${summary.unit ?? 'samples'}** · after: **${summary.afterSamples} ${summary.unit ?? 'samples'}** · ` +
      'changes are in percentage points (pp) of each run\'s total',
    '',
  );
  const table = (heading: string, rows: FunctionChange[]): void => {
    out.push(`**${heading}**`, '');
    if (rows.length === 0) {
      out.push('None.', '');
      return;
    }
    out.push('| # | Function | Self before | Self after | Self change | Total change |', '|---:|---|---:|---:|---:|---:|');
    rows.forEach((r, i) => {
      out.push(
        `| ${i + 1} | ${markdownCode(r.name)} | ${pct(r.before.selfShare)}% | ${pct(r.after.selfShare)}% | ` +
          `${signedPp(r.selfDeltaPp)} pp | ${signedPp(r.totalDeltaPp)} pp |`,
      );
    });
    out.push('');
  };
  table('Grew (self share)', summary.grew);
  table('Shrank (self share)', summary.shrank);
  return `${out.join('\n').trimEnd()}\n`;
}
