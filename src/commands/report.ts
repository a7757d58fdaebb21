// `apisix-profile report <in.folded>`: render an existing folded file (ours,
// or perf's/stapxx's collapse output) as a flame graph and/or exports.
import { basename } from 'node:path';
import { Command } from 'commander';
import { CliError, ExitCode } from '../errors.js';
import { parseFolded } from '../report/fold.js';
import { renderFlameGraph } from '../report/flamegraph/svg.js';
import { mergeIdentical, type UniqueStacks } from '../report/stack.js';
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

export interface ReportOptions extends LogOptions, FlameGraphCliOptions, ExportOptions, GroupByOptions {
  output?: string;
  /** Unset: pprof and speedscope assume DEFAULT_FREQUENCY, the summary names none. */
  frequency?: number;
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
    .option(
      '-F, --frequency <hz>',
      `the rate the stacks were sampled at: turns samples into CPU time in pprof and speedscope (default: ${DEFAULT_FREQUENCY})`,
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
  perf script | stackcollapse-perf.pl | apisix-profile report - -o perf.svg --inverted

Exit codes: 0 ok, 1 internal error, 2 bad arguments (unreadable or malformed input),
4 permission denied, 6 no samples in the input.`,
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

export async function runReportCommand(input: string, opts: ReportOptions, ctx: RunContext): Promise<number> {
  const outputs = reportOutputs(opts);
  checkOutputs(outputs, [input]);
  const { log } = openTerminal(opts, ctx);
  const stacks = groupedStacks(readFolded(input), opts);
  const samples = stacks.reduce((sum, s) => sum + s.count, 0);
  const name = input === STDIO ? 'stdin' : basename(input);

  const svgPath = outputs.find((o) => o.flag === '--output')?.path;
  if (svgPath !== undefined) {
    const svg = renderFlameGraph(stacks, flameGraphOptions(opts, { title: 'apisix-profile', subtitle: `${name}: ${samples} samples` }));
    writeOutput(svgPath, svg);
  }
  writeExports(
    stacks,
    opts,
    {
      name,
      frequencyHz: opts.frequency ?? DEFAULT_FREQUENCY,
      summary: {
        title: opts.title ?? `apisix-profile: ${name}`,
        ...(opts.frequency !== undefined ? { frequencyHz: opts.frequency } : {}),
      },
    },
    log,
    ctx.env,
  );
  const written = Object.fromEntries(outputs.map((s) => [s.flag.slice(2), s.path]));
  log.info({ input, ...written }, `${samples} samples in ${stacks.length} stacks from ${name}`);
  if (samples === 0) {
    log.warn(`no samples in ${name}: the outputs are empty`);
    return ExitCode.NoSamples;
  }
  return ExitCode.Ok;
}
