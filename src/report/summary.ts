// A short text summary of a profile: totals, workers, the hottest functions,
// where the LuaJIT VM itself spent time, and how much was lost or cut short.
// Markdown for CI job summaries ($GITHUB_STEP_SUMMARY) and JSON for tools.

import { commandText, endText, requestCost, type CommandRun } from '../load/command-run.js';
import { stackPhases, stackPlugins } from './gateway.js';
import { byCodeUnits, checkCount, type Stack } from './stack.js';
import { uriCounts } from './uris.js';
import type { TimeWeight } from './weight.js';

/** LuaJIT VM states, as counted by the sampler from `global_State.vmstate`. */
export type VmStateName = 'interpreted' | 'compiled' | 'c' | 'gc' | 'jit' | 'exit';
export type VmStateCounts = Record<VmStateName, number>;

const VM_STATE_ORDER: readonly VmStateName[] = ['interpreted', 'compiled', 'c', 'gc', 'jit', 'exit'];
const VM_STATE_LABELS: Record<VmStateName, string> = {
  interpreted: 'interpreted Lua',
  compiled: 'compiled Lua (JIT traces)',
  c: 'C called from Lua',
  gc: 'garbage collector',
  jit: 'JIT compiler',
  exit: 'trace exit',
};

/** The pseudo-frames the stack assembler puts where the VM was busy with itself. */
const VM_FRAMES = [
  ['gc', '[GC]'],
  ['jit', '[JIT compiler]'],
  ['exit', '[trace exit]'],
] as const;

export interface WorkerSamples {
  pid: number;
  samples: number;
  /** The pid as seen inside its container, when it differs. */
  containerPid?: number;
}

export interface SummaryExtra {
  /**
   * --label uri: samples per URI, when the stacks summarized no longer
   * carry their `[uri:...]` frames (profile without --group-by uri);
   * otherwise they are counted from those frames.
   */
  uris?: Map<string, { self: number; total: number }>;
  /** Heading of the Markdown summary. Default "apisix-profile". */
  title?: string;
  frequencyHz?: number;
  durationSec?: number;
  /** Samples per profiled worker process. */
  perPid?: WorkerSamples[];
  /** Samples per VM state, when the sampler counted them. */
  vmStates?: Partial<VmStateCounts>;
  /** Samples taken but not counted (e.g. the counts map was full). */
  lost?: number;
  /** Samples whose native frames were cut at an untrustworthy frame pointer. */
  nativeCutShort?: number;
  /** Further diagnostic counters by name, e.g. { samplesWithoutG: 2 }. */
  counters?: Record<string, number>;
  /** Length of each top-functions list. Default 15. */
  top?: number;
  /** The command the profile ran (`profile -- <command...>`). */
  command?: CommandRun;
  /** Off-CPU and wall profiles: the stacks count µs; where the time went. */
  time?: TimeTotals;
}

/**
 * Where an off-CPU or wall profile's time went, in µs: from the kernel's
 * counts in a run (src/profile/weights.ts), or from the stacks of a folded
 * file (src/report/folded-time.ts). The optional fields are absent when
 * not known (a folded file does not say), never 0 for unknown.
 */
export interface TimeTotals {
  kind: TimeWeight;
  /** Blocked off the CPU (not idle). */
  blockedUs: number;
  /** ... with Lua frames on the stack. */
  blockedInLuaUs: number;
  /** The event loop waiting for events: in the stacks only with --include-idle. Absent: not known. */
  idleUs?: number;
  idleIncluded: boolean;
  /** Wall profiles: CPU samples as time. */
  onCpuUs: number;
  /** Runnable threads waiting for a CPU: not off-CPU time, not in the stacks. */
  preemptedUs?: number;
  switchesBlocked?: number;
  switchesPreempted?: number;
  /** Blocking switches not counted (a map full, or a CPU sample tore the walk): should be 0. */
  lostSwitches?: number;
}

/** TimeTotals with the shares of the whole (idle + blocked + on CPU), 0..1. */
export interface TimeSummary extends TimeTotals {
  /** Absent with idleUs: the shares are then of blocked + on CPU. */
  idleShare?: number;
  blockedInLuaShare: number;
  blockedOutsideLuaShare: number;
  onCpuShare: number;
}

export interface FunctionShare {
  /** The frame text, e.g. `heavy (/app/work.lua:12)`. */
  name: string;
  /** Samples where it was the leaf frame. */
  self: number;
  /** Samples where it was anywhere on the stack (once per stack). */
  total: number;
  /** self / totalSamples, 0..1. */
  selfShare: number;
  /** total / totalSamples, 0..1. */
  totalShare: number;
}

export interface WorkerShare extends WorkerSamples {
  /** samples / the sum over all workers, 0..1. */
  share: number;
}

export interface Summary {
  title: string;
  /** Samples; in off-CPU and wall profiles µs (see `time`). */
  totalSamples: number;
  /** Off-CPU and wall profiles only: the counts are µs, and where the time went. */
  time?: TimeSummary;
  frequencyHz?: number;
  durationSec?: number;
  /** The command the profile ran (`profile -- <command...>`), how it ended and the requests it reported. */
  command?: CommandRun;
  /** totalSamples / command.requests: what `diff --fail-on-samples` compares. Present with a request count. */
  samplesPerRequest?: number;
  /** samplesPerRequest / frequencyHz in ms: the same, comparable between frequencies. */
  cpuMsPerRequest?: number;
  /** Busiest first; ties by pid. */
  workers: WorkerShare[];
  /**
   * APISIX/Kong plugins (src/report/gateway.ts): self = samples whose
   * innermost Lua frame is the plugin's code, total = samples with the
   * plugin anywhere on the stack. Highest total first; ties by self, name.
   * Empty without plugin code.
   */
  plugins: FunctionShare[];
  /**
   * nginx phases (src/report/gateway.ts): self = samples charged to the
   * phase (each sample to one), total = samples with the phase on the
   * stack (a body filter run from content counts for both). Highest self
   * first; ties by total, name. Empty without samples.
   */
  phases: FunctionShare[];
  /**
   * Request URI paths (--label uri, src/report/uris.ts): samples taken
   * while Lua served a request with that URI (self = total: one URI per
   * sample). Highest first; `[other]` holds the URIs beyond --max-labels.
   * Empty without labels.
   */
  uris: FunctionShare[];
  /** Highest self first; ties by name. */
  topSelf: FunctionShare[];
  /** Highest total first; ties by name. */
  topTotal: FunctionShare[];
  /** Samples whose stack holds `[GC]`, `[JIT compiler]`, `[trace exit]`. */
  vmFrames: { gc: number; jit: number; exit: number };
  /** Present when the sampler counted VM states; missing states are 0. */
  vmStates?: VmStateCounts;
  /** Present when the run counted it (a folded file does not say). */
  lost?: number;
  /** Present when the run counted it (a folded file does not say). */
  nativeCutShort?: number;
  /** Keys in code-unit order. */
  counters: Record<string, number>;
}

const DEFAULT_TITLE = 'apisix-profile';
const DEFAULT_TOP = 15;

function checkCounter(name: string, value: number): void {
  checkCount(value, `summary ${name}`);
}

function share(part: number, whole: number): number {
  return whole > 0 ? part / whole : 0;
}

function ranked(
  counts: Map<string, { self: number; total: number }>,
  first: 'self' | 'total',
  totalSamples: number,
): FunctionShare[] {
  const second = first === 'self' ? 'total' : 'self';
  return [...counts.entries()]
    .sort(([an, a], [bn, b]) => b[first] - a[first] || b[second] - a[second] || byCodeUnits(an, bn))
    .map(([name, c]) => functionShare(name, c, totalSamples));
}

function functionShare(name: string, c: { self: number; total: number }, totalSamples: number): FunctionShare {
  return { name, self: c.self, total: c.total, selfShare: share(c.self, totalSamples), totalShare: share(c.total, totalSamples) };
}

function rank(
  counts: Map<string, { self: number; total: number }>,
  key: 'self' | 'total',
  top: number,
  totalSamples: number,
): FunctionShare[] {
  return [...counts.entries()]
    .filter(([, c]) => c[key] > 0)
    .sort(([an, a], [bn, b]) => b[key] - a[key] || byCodeUnits(an, bn))
    .slice(0, top)
    .map(([name, c]) => functionShare(name, c, totalSamples));
}

/**
 * Summarize stacks (root first). A function is a unique frame text; its self
 * samples are those where it is the leaf, its total samples those where it
 * appears at least once (recursion counts once). Everything is ordered
 * deterministically. Throws a RangeError for negative or non-integer counts.
 */
export function summarize(stacks: readonly Stack[], extra: SummaryExtra = {}): Summary {
  const top = extra.top ?? DEFAULT_TOP;
  checkCounter('top', top);
  let totalSamples = 0;
  const counts = new Map<string, { self: number; total: number }>();
  const plugins = new Map<string, { self: number; total: number }>();
  const phases = new Map<string, { self: number; total: number }>();
  const vmFrames = { gc: 0, jit: 0, exit: 0 };
  const entryIn = (map: Map<string, { self: number; total: number }>, name: string): { self: number; total: number } => {
    let c = map.get(name);
    if (!c) {
      c = { self: 0, total: 0 };
      map.set(name, c);
    }
    return c;
  };
  const entry = (name: string) => entryIn(counts, name);

  for (const { frames, count } of stacks) {
    checkCount(count);
    if (count === 0) continue;
    totalSamples += count;
    if (frames.length === 0) continue;
    entry(frames[frames.length - 1]).self += count;
    const seen = new Set(frames);
    for (const name of seen) entry(name).total += count;
    for (const [state, frame] of VM_FRAMES) if (seen.has(frame)) vmFrames[state] += count;
    const byPlugin = stackPlugins(frames);
    if (byPlugin.self !== null) entryIn(plugins, byPlugin.self).self += count;
    for (const name of byPlugin.total) entryIn(plugins, name).total += count;
    const byPhase = stackPhases(frames);
    entryIn(phases, byPhase.phase).self += count;
    for (const name of byPhase.onStack) entryIn(phases, name).total += count;
  }

  const perPid = extra.perPid ?? [];
  for (const w of perPid) checkCounter(`samples of pid ${w.pid}`, w.samples);
  const workerTotal = perPid.reduce((sum, w) => sum + w.samples, 0);
  const workers = perPid
    .map((w): WorkerShare => ({ ...w, share: share(w.samples, workerTotal) }))
    .sort((a, b) => b.samples - a.samples || a.pid - b.pid);

  let vmStates: VmStateCounts | undefined;
  if (extra.vmStates) {
    const given = extra.vmStates;
    vmStates = { interpreted: 0, compiled: 0, c: 0, gc: 0, jit: 0, exit: 0 };
    for (const state of VM_STATE_ORDER) {
      const v = given[state] ?? 0;
      checkCounter(`vmStates.${state}`, v);
      vmStates[state] = v;
    }
  }

  const counters: Record<string, number> = {};
  for (const name of Object.keys(extra.counters ?? {}).sort(byCodeUnits)) {
    const v = (extra.counters as Record<string, number>)[name];
    checkCounter(name, v);
    counters[name] = v;
  }
  const { lost, nativeCutShort } = extra;
  if (lost !== undefined) checkCounter('lost', lost);
  if (nativeCutShort !== undefined) checkCounter('nativeCutShort', nativeCutShort);

  const cost = extra.command && !extra.time ? requestCost(totalSamples, extra.frequencyHz, extra.command.requests) : null;

  // Built in display order, so the JSON reads top-down like the Markdown.
  const summary: Summary = {
    title: extra.title ?? DEFAULT_TITLE,
    totalSamples,
    ...(extra.time ? { time: timeSummary(extra.time) } : {}),
    ...(extra.frequencyHz !== undefined ? { frequencyHz: extra.frequencyHz } : {}),
    ...(extra.durationSec !== undefined ? { durationSec: extra.durationSec } : {}),
    ...(extra.command ? { command: extra.command } : {}),
    ...(cost ?? {}),
    workers,
    plugins: ranked(plugins, 'total', totalSamples),
    phases: ranked(phases, 'self', totalSamples),
    uris: ranked(extra.uris ?? uriCounts(stacks), 'total', totalSamples),
    topSelf: rank(counts, 'self', top, totalSamples),
    topTotal: rank(counts, 'total', top, totalSamples),
    vmFrames,
    ...(vmStates ? { vmStates } : {}),
    ...(lost !== undefined ? { lost } : {}),
    ...(nativeCutShort !== undefined ? { nativeCutShort } : {}),
    counters,
  };
  return summary;
}

/** TimeTotals with their shares. Throws a RangeError for a negative or non-integer total. */
export function timeSummary(t: TimeTotals): TimeSummary {
  for (const [name, v] of Object.entries(t)) if (typeof v === 'number') checkCounter(`time.${name}`, v);
  const whole = (t.idleUs ?? 0) + t.blockedUs + t.onCpuUs;
  return {
    ...t,
    ...(t.idleUs !== undefined ? { idleShare: share(t.idleUs, whole) } : {}),
    blockedInLuaShare: share(t.blockedInLuaUs, whole),
    blockedOutsideLuaShare: share(t.blockedUs - t.blockedInLuaUs, whole),
    onCpuShare: share(t.onCpuUs, whole),
  };
}

/** "98.0% idle, 1.6% blocked in Lua, ...": the headline of an off-CPU or wall profile. */
export function timeHeadline(t: TimeSummary): string {
  const p = (f: number) => `${(f * 100).toFixed(1)}%`;
  const parts = [`${p(t.blockedInLuaShare)} blocked in Lua`, `${p(t.blockedOutsideLuaShare)} blocked outside Lua`];
  if (t.idleShare !== undefined) parts.unshift(`${p(t.idleShare)} idle`);
  if (t.kind === 'wall') parts.push(`${p(t.onCpuShare)} on CPU`);
  return parts.join(', ');
}

/** The clauses after the Markdown headline; those a folded file cannot tell are left out. */
function timeFacts(t: TimeSummary): string[] {
  const amounts = [`${seconds(t.blockedUs / 1e6)} blocked`];
  if (t.idleUs !== undefined) amounts.unshift(`${seconds(t.idleUs / 1e6)} idle`);
  if (t.kind === 'wall') amounts.push(`${seconds(t.onCpuUs / 1e6)} on CPU`);
  const facts = [amounts.join(', ')];
  if (t.idleIncluded) facts.push('idle included in the tables');
  else facts.push(t.idleUs !== undefined ? 'idle left out of the tables' : 'no idle stacks: idle time not known');
  if (t.switchesBlocked !== undefined) {
    facts.push(`${t.switchesBlocked} blocking switches${t.lostSwitches !== undefined ? `, ${t.lostSwitches} lost` : ''}`);
  }
  if (t.switchesPreempted !== undefined) {
    facts.push(`preempted: ${t.switchesPreempted} times${t.preemptedUs !== undefined ? `, ${seconds(t.preemptedUs / 1e6)}` : ''}, not counted`);
  }
  return facts;
}

/** The summary as pretty-printed JSON, ending with a newline. */
export function renderSummaryJson(summary: Summary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

function pct(fraction: number): string {
  return `${(fraction * 100).toFixed(2)}%`;
}

/**
 * Inline code for a Markdown table cell: the fence is longer than any run
 * of backticks inside, and `|` is escaped, which GitHub honours even in code.
 */
export function markdownCode(text: string): string {
  const flat = text.replace(/\r\n|[\r\n]/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(flat.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

/** Plain text for Markdown: escape what would start markup. */
export function markdownText(text: string): string {
  return text.replace(/\r\n|[\r\n]/g, ' ').replace(/([\\`*_[\]<>|#])/g, '\\$1');
}

function seconds(value: number): string {
  return `${Number(value.toFixed(3))} s`;
}

/** The load line: the command, how it ended, its requests and the cost of one. */
function commandMarkdown(summary: Summary): string {
  const run = summary.command!;
  const parts = [`**Load:** ${markdownCode(commandText(run.argv))} ${endText(run)}`];
  if (run.requests !== undefined) {
    const errors = (run.non2xxResponses ?? 0) + (run.socketErrors ?? 0) > 0 ? ` (${run.non2xxResponses ?? 0} non-2xx, ${run.socketErrors ?? 0} socket errors)` : '';
    parts.push(`${run.requests} requests${errors}`);
  }
  if (summary.samplesPerRequest !== undefined && summary.cpuMsPerRequest !== undefined) {
    parts.push(`**${summary.samplesPerRequest.toPrecision(4)} samples per request** (${summary.cpuMsPerRequest.toPrecision(4)} ms of CPU)`);
  }
  return parts.join(' · ');
}

/**
 * A compact Markdown summary: a headline, then tables for workers, VM
 * activity and the top functions by self and by total samples.
 */
export function renderSummaryMarkdown(summary: Summary): string {
  const out: string[] = [];
  const total = summary.totalSamples;
  const time = summary.time;
  // What a count is, and what the shares are of.
  const unit = time ? 'µs' : 'samples';
  const measure = !time ? 'CPU' : time.kind === 'off_cpu' ? 'Blocked time' : 'Wall time';
  out.push(`### ${markdownText(summary.title)}`, '');
  if (time) out.push(`**${timeHeadline(time)}** (${timeFacts(time).join('; ')})`, '');

  const head = [`**${total} ${unit}**`];
  if (summary.frequencyHz !== undefined && (!time || time.kind === 'wall')) head.push(`at ${summary.frequencyHz} Hz`);
  if (summary.durationSec !== undefined) head.push(`over ${seconds(summary.durationSec)}`);
  const facts = [head.join(' ')];
  if (summary.workers.length > 0) {
    facts.push(`${summary.workers.length} worker${summary.workers.length === 1 ? '' : 's'}`);
  }
  if (summary.lost !== undefined) facts.push(`lost: ${summary.lost} (${pct(share(summary.lost, total + summary.lost))})`);
  if (summary.nativeCutShort !== undefined) {
    facts.push(`native stacks cut short: ${summary.nativeCutShort} (${pct(share(summary.nativeCutShort, total))})`);
  }
  for (const [name, value] of Object.entries(summary.counters)) facts.push(`${markdownText(name)}: ${value}`);
  out.push(facts.join(' · '), '');
  if (summary.command) out.push(commandMarkdown(summary), '');

  if (summary.workers.length > 0) {
    out.push(`| Worker pid | ${time ? 'µs' : 'Samples'} | Share |`, '|---|---:|---:|');
    for (const w of summary.workers) {
      const inContainer = w.containerPid !== undefined ? ` (${w.containerPid} in container)` : '';
      out.push(`| ${w.pid}${inContainer} | ${w.samples} | ${pct(w.share)} |`);
    }
    out.push('');
  }

  if (total > 0) {
    out.push(`**${measure} by plugin** (self: in the plugin\'s own code and what it calls in C; total: the plugin anywhere on the stack)`, '');
    if (summary.plugins.length === 0) out.push(`No APISIX or Kong plugin code in these ${time ? 'stacks' : 'samples'}.`, '');
    else {
      out.push('| # | Plugin | Self | Total |', '|---:|---|---:|---:|');
      summary.plugins.forEach((r, i) => {
        out.push(`| ${i + 1} | ${markdownCode(r.name)} | ${pct(r.selfShare)} (${r.self}) | ${pct(r.totalShare)} (${r.total}) |`);
      });
      out.push('');
    }
    out.push(`**${measure} by nginx phase** (self: charged to the phase; total: the phase on the stack, with filters it ran)`, '');
    out.push('| # | Phase | Self | Total |', '|---:|---|---:|---:|');
    summary.phases.forEach((r, i) => {
      out.push(`| ${i + 1} | ${markdownCode(r.name)} | ${pct(r.selfShare)} (${r.self}) | ${pct(r.totalShare)} (${r.total}) |`);
    });
    out.push('');
    // Only with --label uri (or a folded file that carries its labels).
    if (summary.uris.length > 0) {
      out.push(`**${measure} by request URI** (while Lua ran for a request with that path; the rest ran outside any request)`, '');
      out.push('| # | URI | Share |', '|---:|---|---:|');
      summary.uris.forEach((r, i) => out.push(`| ${i + 1} | ${markdownCode(r.name)} | ${pct(r.totalShare)} (${r.total}) |`));
      out.push('');
    }
  }

  out.push(`| VM activity | ${time ? 'µs' : 'Samples'} | Share |`, '|---|---:|---:|');
  for (const [state, frame] of VM_FRAMES) {
    out.push(`| ${markdownCode(frame)} on stack | ${summary.vmFrames[state]} | ${pct(share(summary.vmFrames[state], total))} |`);
  }
  out.push('');
  if (summary.vmStates) {
    // Shares of the samples the sampler classified, which may differ from
    // the stacks' total (e.g. samples outside the VM are not classified).
    const states = summary.vmStates;
    const counted = VM_STATE_ORDER.reduce((sum, s) => sum + states[s], 0);
    out.push(`| LuaJIT VM state | ${time ? 'µs' : 'Samples'} | Share |`, '|---|---:|---:|');
    for (const state of VM_STATE_ORDER) {
      out.push(`| ${VM_STATE_LABELS[state]} | ${states[state]} | ${pct(share(states[state], counted))} |`);
    }
    out.push('');
  }

  const table = (heading: string, rows: FunctionShare[]): void => {
    out.push(`**${heading}**`, '');
    if (rows.length === 0) {
      out.push(time ? 'No stacks.' : 'No samples.', '');
      return;
    }
    out.push('| # | Function | Self | Total |', '|---:|---|---:|---:|');
    rows.forEach((r, i) => {
      out.push(`| ${i + 1} | ${markdownCode(r.name)} | ${pct(r.selfShare)} (${r.self}) | ${pct(r.totalShare)} (${r.total}) |`);
    });
    out.push('');
  };
  table(`Top functions by self ${time ? 'time' : 'samples'}`, summary.topSelf);
  table(`Top functions by total ${time ? 'time' : 'samples'}`, summary.topTotal);
  return `${out.join('\n').trimEnd()}\n`;
}
