// `apisix-profile diff <before.folded> <after.folded>`: a differential flame
// graph (the after run's frames, red where their share grew, blue where it
// shrank) and, for CI, the functions that changed most; with
// `--fail-on-function`/`--fail-on-plugin` a gate that exits 9 when a
// function's or plugin's share grew too much, and with `--fail-on-samples`
// (the work counts from `--base-summary`/`--head-summary`) when a request
// took too much more CPU.
import { basename } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { CliError, ExitCode } from '../errors.js';
import {
  diffStacks,
  foldDiff,
  renderDiffFlameGraph,
  renderDiffSummaryJson,
  renderDiffSummaryMarkdown,
  summarizeDiff,
} from '../report/diff.js';
import {
  DEFAULT_MIN_SAMPLES,
  gateLogLine,
  judgeDiff,
  offendingNames,
  renderGateMarkdown,
  renderGatedDiffSummaryJson,
  type GateResult,
} from '../report/gate.js';
import { openTerminal, type RunContext } from './context.js';
import {
  addFlameGraphOptions,
  addLogOptions,
  flameGraphOptions,
  integerIn,
  path,
  saturatePp,
  type FlameGraphCliOptions,
  type LogOptions,
} from './options.js';
import { STDIO, appendStepSummary, checkOutputs, readInput, writeOutput, type OutputSpec } from './outputs.js';
import type { RunWork } from '../report/gate-work.js';
import { readFolded } from './report.js';
import { totalCount } from '../report/stack.js';
import { countUnit } from '../report/weight.js';
import type { ProfileMode } from '../native/profiler-object.js';
import { foldedModeOption, timeWeight } from './profile-mode.js';

export interface DiffOptions extends LogOptions, FlameGraphCliOptions {
  output: string;
  folded?: string;
  json?: string;
  summary?: string;
  top: number;
  saturate: number;
  failOnFunction?: number;
  failOnPlugin?: number;
  minSamples?: number;
  failOnSamples?: number;
  baseSummary?: string;
  headSummary?: string;
  /** What the counts are: samples (cpu) or µs (off-cpu, wall). Only the unit the outputs name changes. */
  mode?: ProfileMode;
}

/** `--fail-on-function <pp>`, `--fail-on-plugin <pp>`: percentage points, above 0 and at most 100. */
export function gatePp(name: string): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!/^(\d+(\.\d+)?|\.\d+)$/.test(value.trim()) || !(n > 0) || n > 100) {
      throw new InvalidArgumentError(`${name} must be a number of percentage points above 0 and at most 100`);
    }
    return n;
  };
}

/** `--fail-on-samples <ratio>`: above 1 (1 would fail half of all identical runs), at most 100. */
export function samplesRatio(value: string): number {
  const n = Number(value);
  if (!/^(\d+(\.\d+)?|\.\d+)$/.test(value.trim()) || !(n > 1) || n > 100) {
    throw new InvalidArgumentError('fail-on-samples must be a ratio above 1 and at most 100, e.g. 1.1 (fail when head took 10% more CPU per request)');
  }
  return n;
}

/**
 * One run's work from its JSON summary (`profile --json F -- wrk ...`):
 * its samples, frequency and requests. The summary must be the folded
 * file's own run: same number of samples.
 */
export function runWorkOf(summaryText: string, file: string, flag: string, foldedSamples: number, foldedFile: string): RunWork {
  const fix = `profile the load with \`apisix-profile --pid M --folded F --json ${file} -- wrk ...\``;
  let s: { totalSamples?: unknown; frequencyHz?: unknown; time?: unknown; command?: { requests?: unknown } };
  try {
    s = JSON.parse(summaryText) as typeof s;
  } catch {
    throw new CliError(`${flag} ${file} is not JSON: give the --json summary of a profile`, ExitCode.BadArguments);
  }
  if (typeof s !== 'object' || s === null || typeof s.totalSamples !== 'number') {
    throw new CliError(`${flag} ${file} is not the --json summary of a profile (no totalSamples)`, ExitCode.BadArguments);
  }
  if (s.time !== undefined) throw new CliError(`${flag} ${file} is an off-CPU or wall profile: --fail-on-samples compares CPU samples`, ExitCode.BadArguments);
  if (typeof s.frequencyHz !== 'number') throw new CliError(`${flag} ${file} records no sampling frequency: ${fix}`, ExitCode.BadArguments);
  const requests = s.command?.requests;
  if (typeof requests !== 'number' || !(requests > 0)) {
    throw new CliError(`${flag} ${file} records no request count: ${fix}`, ExitCode.BadArguments);
  }
  if (s.totalSamples !== foldedSamples) {
    throw new CliError(
      `${flag} ${file} summarizes ${s.totalSamples} samples but ${foldedFile} holds ${foldedSamples}: give the summary of the same profile`,
      ExitCode.BadArguments,
    );
  }
  return { samples: s.totalSamples, frequencyHz: s.frequencyHz, requests };
}

export function diffCommand(): Command {
  const cmd = new Command('diff')
    .summary('differential flame graph of two folded-stacks files (before/after)')
    .description(
      'Compare two profiles as shares of their own totals (so runs of different length compare fairly) and draw the ' +
        'after run with each frame red where its share grew and blue where it shrank. No root needed.',
    )
    .argument('<before.folded>', 'folded stacks of the baseline run, or - for stdin')
    .argument('<after.folded>', 'folded stacks of the changed run, or - for stdin')
    .option('-o, --output <file.svg>', 'differential flame graph to write, - for stdout', path('output'), 'diff.svg')
    .option('--folded <file>', 'two-column folded stacks `stack before after` (flamegraph.pl difffolded format)', path('folded'))
    .option('--json <file>', 'the functions that changed most, as JSON', path('json'))
    .option('--summary <file.md>', 'the same as Markdown; also appended to $GITHUB_STEP_SUMMARY when that is set', path('summary'))
    .option('--top <n>', 'functions listed per direction in the summaries', integerIn('top', 1, 1000), 15)
    .option('--saturate <pp>', 'a change of this many percentage points gets the full colour', saturatePp, 5)
    .addOption(foldedModeOption('the files do not say', '; the outputs name the unit'))
    .option(
      '--fail-on-function <pp>',
      'gate: exit 9 when any function\'s self or total share grew by more than this many percentage points',
      gatePp('fail-on-function'),
    )
    .option(
      '--fail-on-plugin <pp>',
      'gate: exit 9 when any APISIX/Kong plugin\'s self or total share grew by more than this many percentage points',
      gatePp('fail-on-plugin'),
    )
    .option(
      '--fail-on-samples <ratio>',
      'gate: exit 9 when the after run took more than ratio times the CPU per request of the before run (needs --base-summary and --head-summary)',
      samplesRatio,
    )
    .option('--base-summary <file.json>', "the before run's --json summary from `profile -- wrk ...`: its samples, frequency and requests", path('base-summary'))
    .option('--head-summary <file.json>', "the after run's --json summary, the same way", path('head-summary'))
    .option(
      '--min-samples <n>',
      `gate: do not judge a share that has fewer than n samples (µs with --mode off-cpu|wall) in both runs (default ${DEFAULT_MIN_SAMPLES}: 1 pp of 30 s at 99 Hz)`,
      integerIn('min-samples', 0, 1_000_000_000),
    );
  addFlameGraphOptions(cmd, false);
  addLogOptions(cmd);
  return cmd.addHelpText(
    'after',
    `
Examples:
  apisix-profile diff before.folded after.folded -o diff.svg
  apisix-profile diff main.folded pr.folded -o diff.svg --summary diff.md --top 10 --saturate 2
  apisix-profile diff base.folded head.folded --fail-on-function 3 --fail-on-plugin 2 --summary diff.md --json diff.json
  apisix-profile diff base.folded head.folded --fail-on-samples 1.2 --base-summary base.json --head-summary head.json

The gate's --fail-on-function and --fail-on-plugin compare shares of each run's total;
--fail-on-samples compares CPU per request, from the JSON summaries of two
\`profile -- wrk ...\` runs. docs/ci.md tells how to choose the thresholds (binomial noise)
and has a GitHub Actions job.

Exit codes: 0 ok (and within the gate's thresholds), 1 internal error, 2 bad arguments
(unreadable or malformed input), 4 permission denied, 6 no samples in one of the inputs,
(also: a --base-summary/--head-summary without a request count or not of the same run),
9 a diff gate threshold was crossed (the outputs are still written).`,
  );
}

export function diffOutputs(opts: DiffOptions): OutputSpec[] {
  const specs: OutputSpec[] = [{ flag: '--output', path: opts.output }];
  for (const flag of ['folded', 'json', 'summary'] as const) {
    const p = opts[flag];
    if (p !== undefined) specs.push({ flag: `--${flag}`, path: p });
  }
  return specs;
}

export async function runDiffCommand(before: string, after: string, opts: DiffOptions, ctx: RunContext): Promise<number> {
  if (before === STDIO && after === STDIO) {
    throw new CliError('before and after cannot both be stdin (-)', ExitCode.BadArguments);
  }
  const gated = opts.failOnFunction !== undefined || opts.failOnPlugin !== undefined || opts.failOnSamples !== undefined;
  if (opts.minSamples !== undefined && !gated) {
    throw new CliError('--min-samples sets what the gate judges: add --fail-on-function <pp> or --fail-on-plugin <pp>', ExitCode.BadArguments);
  }
  const summaries = [opts.baseSummary, opts.headSummary];
  if (opts.failOnSamples !== undefined && summaries.includes(undefined)) {
    throw new CliError(
      '--fail-on-samples compares CPU per request: add --base-summary base.json --head-summary head.json (the --json summaries of `profile -- wrk ...`)',
      ExitCode.BadArguments,
    );
  }
  if (opts.failOnSamples === undefined && summaries.some((f) => f !== undefined)) {
    throw new CliError('--base-summary and --head-summary give --fail-on-samples its request counts: add --fail-on-samples <ratio>', ExitCode.BadArguments);
  }
  const outputs = diffOutputs(opts);
  checkOutputs(outputs, [before, after, ...summaries.filter((f): f is string => f !== undefined)]);
  const { log } = openTerminal(opts, ctx);
  const b = readFolded(before);
  const a = readFolded(after);
  const work =
    opts.baseSummary !== undefined && opts.headSummary !== undefined
      ? {
          before: runWorkOf(readInput(opts.baseSummary), opts.baseSummary, '--base-summary', totalCount(b), before),
          after: runWorkOf(readInput(opts.headSummary), opts.headSummary, '--head-summary', totalCount(a), after),
        }
      : undefined;
  const nameOf = (p: string) => (p === STDIO ? 'stdin' : basename(p));
  const title = opts.title ?? 'apisix-profile: differential';
  const unit = countUnit(timeWeight(opts.mode ?? 'cpu'));

  const svg = renderDiffFlameGraph(b, a, {
    ...flameGraphOptions(opts, { title, subtitle: `${nameOf(before)} → ${nameOf(after)}` }),
    saturatePp: opts.saturate,
    unit,
  });
  writeOutput(opts.output, svg);
  if (opts.folded !== undefined) writeOutput(opts.folded, foldDiff(diffStacks(b, a)));

  const [bt, at] = [totalCount(b), totalCount(a)];
  const empty = bt === 0 ? before : at === 0 ? after : null;
  // The gate judges nothing when a side has no samples: that is exit 6.
  const gate: GateResult | null =
    gated && empty === null
      ? judgeDiff(b, a, {
          functionPp: opts.failOnFunction,
          pluginPp: opts.failOnPlugin,
          minSamples: opts.minSamples ?? DEFAULT_MIN_SAMPLES,
          ...(opts.failOnSamples !== undefined ? { samplesRatio: opts.failOnSamples, work } : {}),
        })
      : null;
  if (opts.json !== undefined || opts.summary !== undefined) {
    const summary = summarizeDiff(b, a, { title, top: opts.top, unit });
    if (opts.json !== undefined) writeOutput(opts.json, gate ? renderGatedDiffSummaryJson(summary, gate) : renderDiffSummaryJson(summary));
    if (opts.summary !== undefined) {
      const lead = gate
        ? renderGateMarkdown(gate)
        : gated && empty !== null
          ? `**Gate not judged:** no samples in ${nameOf(empty)}.`
          : '';
      const markdown = renderDiffSummaryMarkdown(summary, lead);
      writeOutput(opts.summary, markdown);
      appendStepSummary(markdown, log, ctx.env);
    }
  }

  const written = Object.fromEntries(outputs.map((s) => [s.flag.slice(2), s.path]));
  log.info({ before, after, ...written }, `before ${bt} ${unit}, after ${at} ${unit}`);
  if (empty !== null) {
    log.warn(`no samples in ${nameOf(empty)}: nothing to compare`);
    return ExitCode.NoSamples;
  }
  if (gate !== null) {
    if (gate.verdict === 'fail') {
      log.error({ verdict: gate.verdict, offending: offendingNames(gate) }, gateLogLine(gate));
      return ExitCode.GateFailed;
    }
    log.info({ verdict: gate.verdict }, gateLogLine(gate));
  }
  return ExitCode.Ok;
}
