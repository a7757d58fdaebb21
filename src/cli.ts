// Command line: parse and validate options, resolve the target, run the
// profile, write the outputs. The only module that exits the process.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import pino, { type Logger } from 'pino';
import { CliError, ExitCode } from './errors.js';
import { writeFileAtomic } from './output.js';
import { runProfile, bpfObjectPath, type RunStats } from './profile/run.js';
import { foldStacks } from './report/fold.js';
import { renderFlameGraph } from './report/flamegraph/index.js';
import { expandTarget, listProcesses, readProcess } from './target/processes.js';

interface Options {
  pid: number;
  duration: number;
  frequency: number;
  output: string;
  folded?: string;
  kernel: boolean;
  logLevel: string;
}

function integerIn(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

function durationSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > 86_400) {
    throw new InvalidArgumentError('duration must be a number of seconds above 0 and at most 86400');
  }
  return n;
}

export function buildProgram(): Command {
  return new Command()
    .name('apisix-profile')
    .description('Lua-aware eBPF CPU profiler for OpenResty and Apache APISIX workers')
    .requiredOption('-p, --pid <pid>', 'nginx worker pid, or a master pid for all its workers', integerIn('pid', 1, 2 ** 22))
    .option('-d, --duration <seconds>', 'how long to sample', durationSeconds, 30)
    .option('-F, --frequency <hz>', 'samples per second per CPU', integerIn('frequency', 1, 10_000), 99)
    .option('-o, --output <file.svg>', 'flame graph to write', 'flame.svg')
    .option('--folded <file>', 'also write folded stacks (flamegraph.pl format)')
    .option('--no-kernel', 'leave out kernel frames')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace', 'info')
    .addHelpText(
      'after',
      `
Examples:
  sudo apisix-profile --pid 1234 --duration 30
  sudo apisix-profile --pid $(cat /usr/local/apisix/logs/nginx.pid) -o apisix.svg --folded apisix.folded

Exit codes: 0 ok, 1 internal error, 2 bad arguments, 3 target not found,
4 permission denied, 5 kernel unsupported, 6 no samples, 130 interrupted twice.`,
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

function checkWritable(path: string): void {
  const dir = dirname(resolve(path));
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${path}: directory ${dir} is missing or not writable`, ExitCode.BadArguments);
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new CliError(`cannot write ${path}: it is a directory`, ExitCode.BadArguments);
  }
}

function resolveTargets(pid: number, log: Logger): number[] {
  const target = readProcess(pid);
  if (!target) throw new CliError(`no process with pid ${pid}: check the pid (e.g. pgrep -a nginx)`, ExitCode.TargetNotFound);
  const pids = expandTarget(target, listProcesses()).map((p) => p.pid);
  if (pids.length === 0) throw new CliError(`nginx master ${pid} has no worker processes`, ExitCode.TargetNotFound);
  if (pids.length > 1 || pids[0] !== pid) log.info({ master: pid, workers: pids }, `profiling ${pids.length} worker(s) of master ${pid}`);
  return pids;
}

function summaryLine(stats: RunStats): string {
  const pct = (n: number) => (stats.samples ? ((100 * n) / stats.samples).toFixed(1) : '0.0');
  const perPid = [...stats.perPid].map(([pid, n]) => `${pid}:${n}`).join(' ');
  return (
    `${stats.samples} samples in ${stats.elapsedSec.toFixed(1)} s (${perPid || 'none'}); ` +
    `${pct(stats.samplesInLua)}% in Lua; ${pct(stats.nativeCutShort)}% with native frames cut at a missing frame pointer; ` +
    `${stats.lostMapFull} lost`
  );
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    program.parse(argv);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return ExitCode.Ok;
    return ExitCode.BadArguments;
  }
  const opts = program.opts<Options>();
  const log = pino({ name: 'apisix-profile', level: opts.logLevel }, pino.destination({ fd: 2, sync: true }));

  checkWritable(opts.output);
  if (opts.folded) checkWritable(opts.folded);
  if (process.getuid?.() !== 0) {
    throw new CliError('apisix-profile needs root (BPF, perf events, uprobes): run it with sudo', ExitCode.Permission);
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new CliError('this kernel has no BTF (/sys/kernel/btf/vmlinux): a kernel built with CONFIG_DEBUG_INFO_BTF is needed', ExitCode.KernelUnsupported);
  }
  if (!existsSync(bpfObjectPath())) {
    throw new CliError(`BPF object missing (${bpfObjectPath()}): run \`npm run build\``, ExitCode.Internal);
  }
  const pids = resolveTargets(opts.pid, log);

  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      // A second signal: leave now. The kernel drops every probe and event
      // with our file descriptors; outputs are only ever renamed into place.
      process.exit(ExitCode.Interrupted);
    }
    log.info(`${sig}: stopping early, writing what was sampled`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const result = await runProfile({
    pids,
    durationSec: opts.duration,
    frequency: opts.frequency,
    kernelStacks: opts.kernel,
    log,
    signal: abort.signal,
  });

  const folded = foldStacks(result.stacks);
  const svg = renderFlameGraph(result.stacks, {
    title: 'apisix-profile',
    subtitle: `pid ${opts.pid}, ${result.stats.samples} samples at ${opts.frequency} Hz`,
  });
  writeFileAtomic(opts.output, svg);
  if (opts.folded) writeFileAtomic(opts.folded, folded);
  log.info({ output: opts.output, folded: opts.folded }, summaryLine(result.stats));
  if (result.stats.samples === 0) {
    log.warn('no samples: the target did not run on a CPU during the profile (is it idle?)');
    return ExitCode.NoSamples;
  }
  return ExitCode.Ok;
}

function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EPERM' || e?.code === 'EACCES') {
    return { message: `permission denied: ${e.message}`, code: ExitCode.Permission };
  }
  return { message: e?.message ?? String(err), code: ExitCode.Internal };
}

main(process.argv).then(
  (code) => process.exit(code),
  (err) => {
    const { message, code } = describeError(err);
    process.stderr.write(`apisix-profile: ${message.split('\n')[0]}\n`);
    if (process.env.APISIX_PROFILE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    process.exit(code);
  },
);
