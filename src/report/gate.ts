// The CI gate of `diff`: pass or fail two runs on how much any function's
// (or APISIX/Kong plugin's) share grew, and on the CPU per request
// (gate-work.ts). Pure functions; the command turns the verdict into an
// exit code and puts it at the top of the summaries.

import { byCodeUnits, checkCount, type UniqueStacks } from './stack.js';
import { diffFunctions, type DiffSummary, type FunctionChange, type FunctionChanges } from './diff.js';
import { stackPlugins } from './gateway.js';
import { markdownCode } from './summary.js';
import { judgeSamples, type RunWork, type SamplesJudgement } from './gate-work.js';

/**
 * Default of `--min-samples`: a function's self or total share is judged
 * only when it comes from at least this many samples in one of the runs.
 *
 * Why 30. The reference run is 99 Hz over 30 s: 2970 samples per busy CPU,
 * so 1 pp is 29.7 samples. A share p = k/n measured from k samples has the
 * binomial standard error sqrt(p(1-p)/n), so p is sqrt(k/(1-p)) >= sqrt(k)
 * standard errors away from zero: 30 samples put a share more than 5.4
 * standard errors from nothing, and below that a "new" function can be a
 * handful of samples that a short or idle run turned into a pp or two. And
 * 30 samples is 1 pp of the reference run, so the floor never hides a 1 pp
 * growth there: only shares smaller than 1 pp of a 30 s run in both runs
 * go unjudged. The floor cannot quiet large functions (their standard error
 * grows with their share, 1.3 pp for a 50% function at 2970 samples):
 * that is what the threshold and the run length are for (docs/ci.md).
 */
export const DEFAULT_MIN_SAMPLES = 30;

export type ShareKind = 'self' | 'total';

export interface GateThresholds {
  /** Fail when a judged self or total share of a function grew by more than this many pp. */
  functionPp?: number;
  /** Fail when a judged self or total share of a plugin grew by more than this many pp. */
  pluginPp?: number;
  /** Shares from fewer samples than this in both runs are not judged. */
  minSamples: number;
  /** Fail when the head run's CPU per request is more than this many times the base run's (needs `work`). */
  samplesRatio?: number;
  /** Both runs' samples, frequency and requests (from their JSON summaries): what samplesRatio judges. */
  work?: { before: RunWork; after: RunWork };
}

/** A function (or plugin) whose share grew past the threshold. */
export interface GateFinding extends FunctionChange {
  /** The shares that grew by more than the threshold: self, total or both. */
  crossed: ShareKind[];
  /** The larger of the crossing changes, in percentage points. */
  grewPp: number;
}

/** The gate's judgement of the functions, or of the plugins. */
export interface GatePart {
  thresholdPp: number;
  /** Functions (plugins) with at least one share judged. */
  judged: number;
  /** Functions (plugins) with fewer than minSamples samples in both runs, self and total: not judged. */
  notJudged: number;
  /**
   * What the regression is in: judged shares that grew past the threshold,
   * largest growth first, ties by name, without the callers whose total
   * share grew only because of them (see `callers`).
   */
  offending: GateFinding[];
  /**
   * Functions whose total share crossed the threshold only through callees
   * listed in `offending` (a slower function makes every caller's total
   * share grow too): largest growth first. They count for the verdict but
   * do not name the regression. Always empty for plugins.
   */
  callers: GateFinding[];
  /** Shares that grew past the threshold but from too few samples to judge: largest first. */
  tooFewSamples: GateFinding[];
}

export interface GateResult {
  verdict: 'pass' | 'fail';
  minSamples: number;
  beforeSamples: number;
  afterSamples: number;
  /** Present with a function threshold. */
  functions?: GatePart;
  /** Present with a plugin threshold. */
  plugins?: GatePart;
  /** Present with a samples-per-request threshold. */
  samples?: SamplesJudgement;
}

function checkPp(pp: number | undefined, what: string): void {
  if (pp !== undefined && (!Number.isFinite(pp) || !(pp > 0) || pp > 100)) {
    throw new RangeError(`gate ${what} must be a number of percentage points above 0 and at most 100, got ${String(pp)}`);
  }
}

const byGrowth = (x: GateFinding, y: GateFinding): number => y.grewPp - x.grewPp || byCodeUnits(x.name, y.name);

/**
 * Samples of the stacks that hold `name` and, below its outermost frame, none
 * of `others`: the part of its total that those functions do not explain.
 */
function samplesNotUnder(stacks: UniqueStacks, name: string, others: ReadonlySet<string>): number {
  let n = 0;
  for (const s of stacks) {
    const i = s.frames.indexOf(name);
    if (i < 0) continue;
    let explained = false;
    for (let j = i + 1; j < s.frames.length && !explained; j++) explained = s.frames[j] !== name && others.has(s.frames[j]);
    if (!explained) n += s.count;
  }
  return n;
}

/** after/afterTotal - before/beforeTotal in percentage points (both totals > 0). */
function growthPp(before: number, beforeTotal: number, after: number, afterTotal: number): number {
  return ((after * beforeTotal - before * afterTotal) * 100) / (beforeTotal * afterTotal);
}

/** The shares that grew past `pp`, judged or from too few samples. */
function crossings(diff: FunctionChanges, pp: number, minSamples: number): Omit<GatePart, 'callers'> {
  const offending: GateFinding[] = [];
  const tooFewSamples: GateFinding[] = [];
  let judged = 0;
  for (const c of diff.changes) {
    const isJudged = (k: ShareKind) => Math.max(c.before[k], c.after[k]) >= minSamples;
    const delta = (k: ShareKind) => (k === 'self' ? c.selfDeltaPp : c.totalDeltaPp);
    const grew = (['self', 'total'] as const).filter((k) => delta(k) > pp);
    if (isJudged('self') || isJudged('total')) judged++;
    const crossed = grew.filter(isJudged);
    const skipped = grew.filter((k) => !isJudged(k));
    const finding = (kinds: ShareKind[]): GateFinding => ({ ...c, crossed: kinds, grewPp: Math.max(...kinds.map(delta)) });
    if (crossed.length > 0) offending.push(finding(crossed));
    else if (skipped.length > 0) tooFewSamples.push(finding(skipped));
  }
  return { thresholdPp: pp, judged, notJudged: diff.changes.length - judged, offending: offending.sort(byGrowth), tooFewSamples: tooFewSamples.sort(byGrowth) };
}

/**
 * Every plugin of either run (src/report/gateway.ts: self = samples whose
 * innermost Lua frame is the plugin's, total = samples with the plugin on
 * the stack) with its counts and shares on both sides.
 */
export function diffPlugins(before: UniqueStacks, after: UniqueStacks): FunctionChanges {
  const side = (stacks: UniqueStacks) => {
    const byName = new Map<string, { self: number; total: number }>();
    const entry = (name: string) => byName.get(name) ?? byName.set(name, { self: 0, total: 0 }).get(name)!;
    let total = 0;
    for (const s of stacks) {
      total += s.count;
      const p = stackPlugins(s.frames);
      if (p.self !== null) entry(p.self).self += s.count;
      for (const name of p.total) entry(name).total += s.count;
    }
    return { total, byName };
  };
  const b = side(before);
  const a = side(after);
  const shares = (c: { self: number; total: number } | undefined, total: number) => {
    const self = c?.self ?? 0;
    const all = c?.total ?? 0;
    return { self, total: all, selfShare: total > 0 ? self / total : 0, totalShare: total > 0 ? all / total : 0 };
  };
  const pp = (x: number, y: number) => (b.total > 0 && a.total > 0 ? growthPp(x, b.total, y, a.total) : 0);
  const names = [...new Set([...b.byName.keys(), ...a.byName.keys()])].sort(byCodeUnits);
  const changes = names.map((name): FunctionChange => {
    const bf = shares(b.byName.get(name), b.total);
    const af = shares(a.byName.get(name), a.total);
    return { name, before: bf, after: af, selfDeltaPp: pp(bf.self, af.self), totalDeltaPp: pp(bf.total, af.total) };
  });
  return { beforeSamples: b.total, afterSamples: a.total, changes };
}

/**
 * Judge two runs: the gate fails when some function's self or total share
 * grew by more than `functionPp` percentage points (or some plugin's by
 * more than `pluginPp`) and that share came from at least `minSamples`
 * samples in one of the runs. Growth of exactly the threshold passes; a
 * threshold left out is not gated.
 *
 * The functions that crossed are then split into the regression and its
 * callers: a function that crossed on its total share only is a caller when,
 * leaving out the stacks where another function that crossed runs below it,
 * its total share did not grow past the threshold. So a function made slower
 * is named alone, not with every function on its call path.
 */
export function judgeDiff(before: UniqueStacks, after: UniqueStacks, thresholds: GateThresholds): GateResult {
  const { functionPp, pluginPp, minSamples, samplesRatio, work } = thresholds;
  checkPp(functionPp, 'functionPp');
  checkPp(pluginPp, 'pluginPp');
  if (functionPp === undefined && pluginPp === undefined && samplesRatio === undefined) {
    throw new RangeError('gate needs functionPp, pluginPp or samplesRatio');
  }
  if (samplesRatio !== undefined && work === undefined) throw new RangeError('gate samplesRatio needs the work of both runs');
  checkCount(minSamples, 'gate minSamples');
  const diff = diffFunctions(before, after);
  const result: GateResult = { verdict: 'pass', minSamples, beforeSamples: diff.beforeSamples, afterSamples: diff.afterSamples };

  if (functionPp !== undefined) {
    const part = crossings(diff, functionPp, minSamples);
    const crossedAll = part.offending;
    const names = new Set(crossedAll.map((f) => f.name));
    const isCaller = (f: GateFinding): boolean => {
      if (f.crossed.includes('self')) return false;
      const others = new Set([...names].filter((n) => n !== f.name));
      const rest = growthPp(
        samplesNotUnder(before, f.name, others),
        diff.beforeSamples,
        samplesNotUnder(after, f.name, others),
        diff.afterSamples,
      );
      return !(rest > functionPp);
    };
    let offending = crossedAll.filter((f) => !isCaller(f));
    // Callers explaining each other (recursion through two functions) and no one else: name them all.
    if (offending.length === 0) offending = crossedAll;
    const callers = crossedAll.filter((f) => !offending.includes(f));
    result.functions = { ...part, offending, callers };
  }
  if (pluginPp !== undefined) result.plugins = { ...crossings(diffPlugins(before, after), pluginPp, minSamples), callers: [] };
  if (samplesRatio !== undefined) result.samples = judgeSamples(diff, work!, samplesRatio, minSamples);
  const failed = (p: GatePart | undefined) => (p?.offending.length ?? 0) > 0;
  result.verdict = failed(result.functions) || failed(result.plugins) || result.samples?.crossed === true ? 'fail' : 'pass';
  return result;
}

/** Percentage points with a sign and two decimals; never "-0.00". */
function signedPp(deltaPp: number): string {
  const s = deltaPp.toFixed(2);
  return Number(s) === 0 ? '+0.00' : deltaPp > 0 ? `+${s}` : s;
}

function pct(fraction: number): string {
  return (fraction * 100).toFixed(2);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The largest change that crossed, e.g. "total +9.63 pp". */
function grewText(f: GateFinding): string {
  const kind = f.crossed.length === 2 ? (f.selfDeltaPp >= f.totalDeltaPp ? 'self' : 'total') : f.crossed[0];
  return `${kind} ${signedPp(f.grewPp)} pp`;
}

const MARKDOWN_ROWS = 50;

const PARTS = [
  { key: 'functions', one: 'function', flag: '--fail-on-function', column: 'Function' },
  { key: 'plugins', one: 'plugin', flag: '--fail-on-plugin', column: 'Plugin' },
] as const;

/**
 * The verdict as Markdown, to lead the diff summary: one bold line, then
 * the offending functions (and plugins), largest growth first, then the
 * thresholds.
 */
export function renderGateMarkdown(r: GateResult): string {
  const out: string[] = [];
  const gated = PARTS.filter((k) => r[k.key] !== undefined);
  const failing = gated.filter((k) => r[k.key]!.offending.length > 0);
  const grewMore = (k: (typeof PARTS)[number]) => {
    const part = r[k.key]!;
    return `${plural(part.offending.length, k.one)} grew by more than ${part.thresholdPp} pp`;
  };
  const s = r.samples;
  if (r.verdict === 'fail') {
    const reasons = [];
    if (s?.crossed) reasons.push(`CPU per request grew ${ratioText(s.ratio)} (more than ${s.thresholdRatio}×)`);
    if (failing.length > 0) reasons.push(`${failing.map(grewMore).join('; ')} (self or total share of its run)`);
    out.push(`**✗ Gate failed:** ${reasons.join('; ')}, largest first.`, '');
  } else {
    const within = gated.map((k) => `no ${k.one}'s self or total share grew by more than ${r[k.key]!.thresholdPp} pp`);
    if (s) within.push(`CPU per request ${ratioText(s.ratio)} the base's (at most ${s.thresholdRatio}×)`);
    out.push(`**✓ Gate passed:** ${within.join('; ')}.`, '');
  }
  if (s?.crossed) out.push(...samplesTable(s), '');
  for (const k of failing) {
    const part = r[k.key]!;
    out.push(`| # | ${k.column} | Grew | Self before → after | Total before → after |`, '|---:|---|---:|---|---|');
    part.offending.slice(0, MARKDOWN_ROWS).forEach((f, i) => {
      out.push(
        `| ${i + 1} | ${markdownCode(f.name)} | **${grewText(f)}** | ` +
          `${pct(f.before.selfShare)}% → ${pct(f.after.selfShare)}% (${signedPp(f.selfDeltaPp)} pp) | ` +
          `${pct(f.before.totalShare)}% → ${pct(f.after.totalShare)}% (${signedPp(f.totalDeltaPp)} pp) |`,
      );
    });
    if (part.offending.length > MARKDOWN_ROWS) out.push('', `… and ${part.offending.length - MARKDOWN_ROWS} more (see the JSON summary).`);
    out.push('');
    if (part.callers.length > 0) {
      const shown = part.callers.slice(0, 10).map((f) => `${markdownCode(f.name)} (${grewText(f)})`);
      const more = part.callers.length > shown.length ? `, and ${part.callers.length - shown.length} more` : '';
      out.push(`Their callers' total shares grew with them: ${shown.join(', ')}${more}.`, '');
    }
  }
  const flags = [...gated.map((k) => `\`${k.flag} ${r[k.key]!.thresholdPp}\``), ...(s ? [`\`--fail-on-samples ${s.thresholdRatio}\``] : [])].join(' ');
  const counts = gated.map((k) => {
    const part = r[k.key]!;
    const skipped = part.tooFewSamples.length > 0 ? `, ${part.tooFewSamples.length} of which grew by more than ${part.thresholdPp} pp` : '';
    return (
      `${plural(part.judged, k.one)} judged, ${plural(part.notJudged, k.one)} with fewer than ${r.minSamples} samples ` +
      `in both runs not judged${skipped}`
    );
  });
  if (s) counts.push(`CPU per request: base ${costText(s.before)}, head ${costText(s.after)}`);
  out.push(`Gate: ${flags} \`--min-samples ${r.minSamples}\` · ${counts.join('; ')}.`);
  return `${out.join('\n')}\n`;
}

/** A ratio as "1.31×". */
function ratioText(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}

function ms(value: number): string {
  return `${value.toPrecision(3)} ms`;
}

/** "0.982 ms (1136 samples at 999 Hz / 1158 requests)". */
function costText(c: SamplesJudgement['before']): string {
  return `${ms(c.cpuMsPerRequest)} (${c.samples} samples at ${c.frequencyHz} Hz / ${c.requests} requests)`;
}

/** Where the extra CPU per request went: the functions whose own CPU per request grew most. */
function samplesTable(s: SamplesJudgement): string[] {
  const head = [`CPU per request: base ${ms(s.before.cpuMsPerRequest)}, head ${ms(s.after.cpuMsPerRequest)}.`];
  if (s.grewMost.length === 0) return [...head, ' No single function with enough samples grew: the growth is spread thin.'];
  return [
    `${head[0]} The functions whose own CPU per request grew most:`,
    '',
    '| # | Function | Self CPU per request before → after | Grew |',
    '|---:|---|---|---:|',
    ...s.grewMost.map(
      (f, i) => `| ${i + 1} | ${markdownCode(f.name)} | ${ms(f.beforeMsPerRequest)} → ${ms(f.afterMsPerRequest)} | **+${ms(f.grewMs)}** |`,
    ),
  ];
}

/** One log line with the verdict, e.g. `gate failed: 1 function grew by more than 2 pp: f (total +9.63 pp)`. */
export function gateLogLine(r: GateResult): string {
  const gated = PARTS.filter((k) => r[k.key] !== undefined);
  const s = r.samples;
  if (r.verdict === 'pass') {
    const within = gated.map((k) => `no ${k.one} grew by more than ${r[k.key]!.thresholdPp} pp`);
    if (s) within.push(`CPU per request ${ratioText(s.ratio)} the base's (at most ${s.thresholdRatio}×)`);
    const counts = gated.map((k) => `${r[k.key]!.judged} ${k.key} judged, ${r[k.key]!.notJudged} with fewer than ${r.minSamples} samples in both runs not judged`);
    return `gate passed: ${within.join(', ')}${counts.length > 0 ? ` (${counts.join('; ')})` : ''}`;
  }
  const failing = gated.filter((k) => r[k.key]!.offending.length > 0);
  const samplesText = s?.crossed
    ? [
        `CPU per request grew ${ratioText(s.ratio)} (more than ${s.thresholdRatio}×: ${ms(s.before.cpuMsPerRequest)} → ${ms(s.after.cpuMsPerRequest)})` +
          (s.grewMost.length > 0 ? `, most in ${s.grewMost[0].name} (+${ms(s.grewMost[0].grewMs)})` : ''),
      ]
    : [];
  return `gate failed: ${[...samplesText, ...failing
    .map((k) => {
      const part = r[k.key]!;
      const shown = part.offending.slice(0, 5).map((f) => `${f.name} (${grewText(f)})`);
      const more = part.offending.length > shown.length ? `, and ${part.offending.length - shown.length} more` : '';
      return `${plural(part.offending.length, k.one)} grew by more than ${part.thresholdPp} pp: ${shown.join(', ')}${more}`;
    })].join('; ')}`;
}

/** The names the gate failed on, for the log record. */
export function offendingNames(r: GateResult): { functions?: string[]; plugins?: string[]; samplesRatio?: number } {
  const out: { functions?: string[]; plugins?: string[]; samplesRatio?: number } = {};
  if (r.samples?.crossed) out.samplesRatio = Number(r.samples.ratio.toFixed(4));
  if (r.functions) out.functions = r.functions.offending.map((f) => f.name);
  if (r.plugins) out.plugins = r.plugins.offending.map((f) => f.name);
  return out;
}

/** The diff summary as JSON with the gate's verdict first. */
export function renderGatedDiffSummaryJson(summary: DiffSummary, r: GateResult): string {
  const { verdict, beforeSamples: _b, afterSamples: _a, ...gate } = r;
  return `${JSON.stringify({ verdict, gate, ...summary }, null, 2)}\n`;
}
