// `apisix-profile diff <before.folded> <after.folded>`: a differential flame
// graph (the after run's frames, red where their share grew, blue where it
// shrank) and, for CI, the functions that changed most.
import { basename } from 'node:path';
import { Command } from 'commander';
import { CliError, ExitCode } from '../errors.js';
import {
  diffStacks,
  foldDiff,
  renderDiffFlameGraph,
  renderDiffSummaryJson,
  renderDiffSummaryMarkdown,
  summarizeDiff,
} from '../report/diff.js';
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
import { STDIO, appendStepSummary, checkOutputs, writeOutput, type OutputSpec } from './outputs.js';
import { readFolded } from './report.js';
import { totalCount } from '../report/stack.js';

export interface DiffOptions extends LogOptions, FlameGraphCliOptions {
  output: string;
  folded?: string;
  json?: string;
  summary?: string;
  top: number;
  saturate: number;
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
    .option('--saturate <pp>', 'a change of this many percentage points gets the full colour', saturatePp, 5);
  addFlameGraphOptions(cmd, false);
  addLogOptions(cmd);
  return cmd.addHelpText(
    'after',
    `
Examples:
  apisix-profile diff before.folded after.folded -o diff.svg
  apisix-profile diff main.folded pr.folded -o diff.svg --summary diff.md --top 10 --saturate 2

Exit codes: 0 ok, 1 internal error, 2 bad arguments (unreadable or malformed input),
4 permission denied, 6 no samples in one of the inputs.`,
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
  const outputs = diffOutputs(opts);
  checkOutputs(outputs, [before, after]);
  const { log } = openTerminal(opts, ctx);
  const b = readFolded(before);
  const a = readFolded(after);
  const nameOf = (p: string) => (p === STDIO ? 'stdin' : basename(p));
  const title = opts.title ?? 'apisix-profile: differential';

  const svg = renderDiffFlameGraph(b, a, {
    ...flameGraphOptions(opts, { title, subtitle: `${nameOf(before)} → ${nameOf(after)}` }),
    saturatePp: opts.saturate,
  });
  writeOutput(opts.output, svg);
  if (opts.folded !== undefined) writeOutput(opts.folded, foldDiff(diffStacks(b, a)));
  if (opts.json !== undefined || opts.summary !== undefined) {
    const summary = summarizeDiff(b, a, { title, top: opts.top });
    if (opts.json !== undefined) writeOutput(opts.json, renderDiffSummaryJson(summary));
    if (opts.summary !== undefined) {
      const markdown = renderDiffSummaryMarkdown(summary);
      writeOutput(opts.summary, markdown);
      appendStepSummary(markdown, log, ctx.env);
    }
  }

  const [bt, at] = [totalCount(b), totalCount(a)];
  const written = Object.fromEntries(outputs.map((s) => [s.flag.slice(2), s.path]));
  log.info({ before, after, ...written }, `before ${bt} samples, after ${at} samples`);
  const empty = bt === 0 ? before : at === 0 ? after : null;
  if (empty !== null) {
    log.warn(`no samples in ${nameOf(empty)}: nothing to compare`);
    return ExitCode.NoSamples;
  }
  return ExitCode.Ok;
}
