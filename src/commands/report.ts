// `apisix-profile report <in.folded>`: render an existing folded file (ours,
// or perf's/stapxx's collapse output) as a flame graph and/or exports.
// A folded file does not record its unit: --mode says whether its counts
// are CPU samples or the µs that `profile --mode off-cpu|wall` writes.
import { basename } from 'node:path';
import { Command } from 'commander';
import { CliError, ExitCode } from '../errors.js';
import { parseFolded } from '../report/fold.js';
import { endsOffCpu, foldedTimeTotals, OFF_CPU_LEAF } from '../report/folded-time.js';
import { renderFlameGraph } from '../report/flamegraph/svg.js';
import { mergeIdentical, type UniqueStacks } from '../report/stack.js';
import { timeHeadline, timeSummary, type TimeTotals } from '../report/summary.js';
import { countUnit, type TimeWeight, usAsSeconds as seconds } from '../report/weight.js';
import type { ProfileMode } from '../profile/weights.js';
import { openTerminal, type RunContext } from './context.js';
import {
  addFlameGraphOptions,
  addGroupByOption,
  addLogOptions,
  flameGraphOptions,
  groupedStacks,
  integerIn,
  path,
  type FlameGraphCliOptions,
  type GroupByOptions,
  type LogOptions,
} from './options.js';
import { STDIO, checkOutputs, readInput, writeOutput, type OutputSpec } from './outputs.js';
import { addExportOptions, exportSpecs, writeExports, type ExportOptions } from './exports.js';
import { foldedModeOption, timeWeight } from './profile-mode.js';

export interface ReportOptions extends LogOptions, FlameGraphCliOptions, ExportOptions, GroupByOptions {
  output?: string;
  /** Unset: pprof and speedscope assume DEFAULT_FREQUENCY, the summary names none. CPU mode only. */
  frequency?: number;
  /** What the counts are: CPU samples (default), or µs of off-CPU or wall time. */
  mode?: ProfileMode;
}

export const DEFAULT_OUTPUT = 'flame.svg';
export const DEFAULT_FREQUENCY = 99;

export function reportCommand(): Command {
  const cmd = new Command('report')
    .summary('render a folded-stacks file as a flame graph, pprof, speedscope or summary')
    .description(
      'Render folded stacks (`root;...;leaf count` per line: ours, or the output of stackcollapse-perf.pl / ' +
        'stackcollapse-stap.pl for perf and stapxx) as a flame graph and any exports asked for. No root needed.',
    )
    .argument('<in.folded>', 'folded stacks file, or - for stdin')
    .option('-o, --output <file.svg>', `flame graph to write, - for stdout (default: ${DEFAULT_OUTPUT} unless only other outputs are asked for)`, path('output'))
    .addOption(foldedModeOption('the file does not say'))
    .option(
      '-F, --frequency <hz>',
      `the rate the stacks were sampled at: turns samples into CPU time in pprof and speedscope (default: ${DEFAULT_FREQUENCY}); ` +
        'not used with --mode off-cpu or wall, whose counts are µs already',
      integerIn('frequency', 1, 10_000),
    );
  addExportOptions(cmd);
  addGroupByOption(cmd);
  addFlameGraphOptions(cmd);
  addLogOptions(cmd);
  return cmd.addHelpText(
    'after',
    `
Examples:
  apisix-profile report apisix.folded -o apisix.svg --title "APISIX, 30 s under wrk"
  apisix-profile report apisix.folded --pprof apisix.pb.gz --speedscope apisix.speedscope.json
  apisix-profile report apisix.folded --summary summary.md --top 10 --json summary.json
  apisix-profile report apisix.folded --group-by phase -o by-phase.svg
  apisix-profile report blocked.folded --mode off-cpu --summary blocked.md --pprof blocked.pb.gz
  apisix-profile report wall.folded --mode wall -o wall.svg --speedscope wall.speedscope.json
  perf script | stackcollapse-perf.pl | apisix-profile report - -o perf.svg --inverted

Exit codes: 0 ok, 1 internal error, 2 bad arguments (unreadable or malformed input),
4 permission denied, 6 nothing in the input (no samples; --mode off-cpu/wall: 0 µs).`,
  );
}

/**
 * Read and parse a folded file, with the file name in any error. Its lines
 * are merged here, once: a file may repeat a stack (flamegraph.pl sums them).
 */
export function readFolded(input: string): UniqueStacks {
  const text = readInput(input);
  try {
    return mergeIdentical(parseFolded(text));
  } catch (err) {
    throw new CliError(`${input === STDIO ? 'stdin' : input}: ${(err as Error).message}`, ExitCode.BadArguments);
  }
}

export function reportOutputs(opts: ReportOptions): OutputSpec[] {
  const exports = exportSpecs(opts);
  const output = opts.output ?? (exports.length === 0 ? DEFAULT_OUTPUT : undefined);
  return [...(output !== undefined ? [{ flag: '--output', path: output }] : []), ...exports];
}

/** The flame graph's second heading: the file and its samples or, for time, where the time went (as profile's). */
export function reportSubtitle(name: string, samples: number, time: TimeTotals | undefined): string {
  if (!time) return `${name}: ${samples} samples`;
  const parts = [`${seconds(time.blockedUs)} blocked`];
  if (time.kind === 'wall') parts.unshift(`${seconds(time.onCpuUs)} on CPU`);
  if (time.idleUs !== undefined) parts.push(`${seconds(time.idleUs)} idle`);
  return `${name}: ${time.kind === 'wall' ? 'wall' : 'off-CPU'} time in ${countUnit(time.kind)}: ${parts.join(', ')}`;
}

/** The last log line: the total in the file's unit and, for time, the headline of the summaries. */
export function reportLine(name: string, total: number, stackCount: number, time: TimeTotals | undefined): string {
  const line = `${total} ${countUnit(time?.kind)} in ${stackCount} stacks from ${name}`;
  return time && total > 0 ? `${line}: ${timeHeadline(timeSummary(time))}` : line;
}

/** Warnings about options and input that do not fit the mode; the outputs are still written. */
export function modeWarnings(stacks: UniqueStacks, name: string, opts: ReportOptions): string[] {
  const mode = opts.mode ?? 'cpu';
  const warnings: string[] = [];
  if (mode !== 'cpu' && opts.frequency !== undefined) warnings.push(`-F is not used with --mode ${mode}: the counts are µs already`);
  const blocked = stacks.filter((s) => endsOffCpu(s.frames)).length;
  if (mode !== 'wall' && blocked > 0) {
    warnings.push(`${blocked} stacks of ${name} end in ${OFF_CPU_LEAF}, as a wall profile's do: its counts are µs, read them with --mode wall`);
  }
  return warnings;
}

export async function runReportCommand(input: string, opts: ReportOptions, ctx: RunContext): Promise<number> {
  const outputs = reportOutputs(opts);
  checkOutputs(outputs, [input]);
  const { log } = openTerminal(opts, ctx);
  const read = readFolded(input);
  const stacks = groupedStacks(read, opts);
  const total = stacks.reduce((sum, s) => sum + s.count, 0);
  const name = input === STDIO ? 'stdin' : basename(input);
  const kind: TimeWeight | undefined = timeWeight(opts.mode ?? 'cpu');
  // From the stacks as the file holds them: --group-by phase puts an
  // `[idle]` root on stacks that ran in the event loop, on the CPU too.
  const time = kind ? foldedTimeTotals(read, kind) : undefined;
  for (const warning of modeWarnings(read, name, opts)) log.warn(warning);

  const svgPath = outputs.find((o) => o.flag === '--output')?.path;
  if (svgPath !== undefined) {
    const graph = flameGraphOptions(opts, { title: 'apisix-profile', subtitle: reportSubtitle(name, total, time) });
    writeOutput(svgPath, renderFlameGraph(stacks, kind ? { ...graph, unit: countUnit(kind) } : graph));
  }
  writeExports(
    stacks,
    opts,
    {
      name,
      frequencyHz: opts.frequency ?? DEFAULT_FREQUENCY,
      ...(kind ? { time: kind } : {}),
      summary: {
        title: opts.title ?? `apisix-profile: ${name}`,
        ...(opts.frequency !== undefined && !kind ? { frequencyHz: opts.frequency } : {}),
        ...(time ? { time } : {}),
      },
    },
    log,
    ctx.env,
  );
  const written = Object.fromEntries(outputs.map((s) => [s.flag.slice(2), s.path]));
  log.info({ input, ...written }, reportLine(name, total, stacks.length, time));
  if (total === 0) {
    log.warn(kind ? `no time in ${name} (0 µs): the outputs are empty` : `no samples in ${name}: the outputs are empty`);
    return ExitCode.NoSamples;
  }
  return ExitCode.Ok;
}
