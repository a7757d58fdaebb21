// The exports every command that has stacks can write (--folded, --pprof,
// --speedscope, --json, --summary, --top): their options, the outputs they
// name, and writing them. Shared by `profile` and `report`.
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { foldStacks } from '../report/fold.js';
import { encodePprof } from '../report/pprof.js';
import { toSpeedscope } from '../report/speedscope.js';
import type { UniqueStacks } from '../report/stack.js';
import { renderSummaryJson, renderSummaryMarkdown, summarize, type SummaryExtra } from '../report/summary.js';
import type { TimeWeight } from '../report/weight.js';
import { integerIn, path } from './options.js';
import { appendStepSummary, writeOutput, type OutputSpec } from './outputs.js';

export interface ExportOptions {
  folded?: string;
  pprof?: string;
  speedscope?: string;
  json?: string;
  summary?: string;
  top: number;
}

/** --folded, --pprof, --speedscope, --json, --summary and --top, shared with `report`. */
export function addExportOptions(cmd: Command): Command {
  return cmd
    .option('--folded <file>', 'folded stacks (flamegraph.pl, inferno, speedscope)', path('folded'))
    .option('--pprof <file>', 'gzipped pprof profile (go tool pprof, Pyroscope, Grafana)', path('pprof'))
    .option('--speedscope <file>', 'speedscope JSON (https://www.speedscope.app)', path('speedscope'))
    .option('--json <file>', 'summary as JSON: totals, workers, top functions, VM activity', path('json'))
    .option('--summary <file.md>', 'summary as Markdown; also appended to $GITHUB_STEP_SUMMARY when that is set', path('summary'))
    .option('--top <n>', 'functions listed in the summaries', integerIn('top', 1, 1000), 15);
}

export function exportSpecs(o: ExportOptions): OutputSpec[] {
  const specs: OutputSpec[] = [];
  for (const flag of ['folded', 'pprof', 'speedscope', 'json', 'summary'] as const) {
    const p = o[flag];
    if (p !== undefined) specs.push({ flag: `--${flag}`, path: p });
  }
  return specs;
}

export interface ExportMeta {
  /** Names the profile in speedscope. */
  name: string;
  frequencyHz: number;
  durationSec?: number;
  startMs?: number;
  summary: SummaryExtra;
  /** Off-CPU and wall profiles: the counts are µs of this kind of time. */
  time?: TimeWeight;
}

/** Write the exports asked for in `o` (folded, pprof, speedscope, JSON and Markdown summaries). */
export function writeExports(stacks: UniqueStacks, o: ExportOptions, meta: ExportMeta, log: Logger, env: NodeJS.ProcessEnv): void {
  if (o.folded !== undefined) writeOutput(o.folded, foldStacks(stacks));
  if (o.pprof !== undefined) {
    const durationNs = BigInt(Math.round((meta.durationSec ?? 0) * 1e9));
    const startNs = meta.startMs !== undefined ? BigInt(Math.round(meta.startMs)) * 1_000_000n : undefined;
    writeOutput(o.pprof, encodePprof(stacks, { frequencyHz: meta.frequencyHz, durationNs, ...(startNs !== undefined ? { startNs } : {}), ...(meta.time ? { time: meta.time } : {}) }));
  }
  if (o.speedscope !== undefined) {
    writeOutput(o.speedscope, `${JSON.stringify(toSpeedscope(stacks, { name: meta.name, frequencyHz: meta.frequencyHz, ...(meta.time ? { time: meta.time } : {}) }))}\n`);
  }
  if (o.json !== undefined || o.summary !== undefined) {
    const summary = summarize(stacks, { ...meta.summary, top: o.top });
    if (o.json !== undefined) writeOutput(o.json, renderSummaryJson(summary));
    if (o.summary !== undefined) {
      const markdown = renderSummaryMarkdown(summary);
      writeOutput(o.summary, markdown);
      appendStepSummary(markdown, log, env);
    }
  }
}

