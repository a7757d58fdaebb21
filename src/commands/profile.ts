// `apisix-profile [profile] --pid N`: sample workers, then write the flame
// graph and whichever exports were asked for.
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { CliError, ExitCode } from '../errors.js';
import { assertProfilingPossible, DEFAULT_BTF } from '../kernel/features.js';
import { bpfObjectPath, DEFAULT_MAX_STACKS, MAX_STACKS_LIMIT, runProfile, type RunStats } from '../profile/run.js';
import { renderFlameGraph } from '../report/flamegraph/svg.js';
import type { SummaryExtra } from '../report/summary.js';
import { progressText } from '../status-line.js';
import { expandTarget, listProcesses, readProcess, workersOfMaster } from '../target/processes.js';
import { lockTargets } from '../target/profile-lock.js';
import { describePid, resolveContainerTargets } from '../target/resolve-container-targets.js';
import { openTerminal, type RunContext } from './context.js';
import {
  addFlameGraphOptions,
  addGroupByOption,
  addLabelOptions,
  addLogOptions,
  containerRef,
  durationSeconds,
  flameGraphOptions,
  groupedStacks,
  integerIn,
  path,
  type FlameGraphCliOptions,
  type GroupByOptions,
  type LabelOptions,
  type LogOptions,
} from './options.js';
import { addExportOptions, exportSpecs, writeExports, type ExportOptions } from './exports.js';
import { addModeOptions, modeLine, modeSubtitle, nothingMeasured, onlyIdleText, timeTotals, timeWeight, type ModeOptions } from './profile-mode.js';
import { countUnit } from '../report/weight.js';
import { STDIO, checkOutputs, writeOutput } from './outputs.js';
import { CommandLoad } from './run-command.js';
import { commandFailed, commandText, endText, requestCost, type CommandRun } from '../load/command-run.js';
import { uriCounts, withoutUriFrames } from '../report/uris.js';

export interface ProfileOptions extends LogOptions, FlameGraphCliOptions, ExportOptions, GroupByOptions, ModeOptions, Partial<LabelOptions> {
  /** Required unless `container` is given; then a pid as seen inside the container. */
  pid?: number;
  /** Container name or id (prefix): profile its nginx workers. */
  container?: string;
  duration: number;
  frequency: number;
  output: string;
  kernel: boolean;
  lines: 'definition' | 'current';
  unwind: 'cfi' | 'fp';
  btf: string;
  maxStacks: number;
  /** A load to run while sampling (`-- wrk ...`): sampling lasts from its start to its end. */
  command?: string[];
  /** --duration was given (with a command it is then an upper bound). */
  durationGiven?: boolean;
}

export function profileCommand(): Command {
  const cmd = new Command('profile')
    .summary('sample nginx workers and write a flame graph (the default command)')
    .description(
      'Sample the CPU stacks of nginx/OpenResty/APISIX workers, Lua and C frames together, and write a flame graph ' +
        'plus any exports asked for. Needs root. This is the default command: `apisix-profile --pid N` runs it.',
    )
    .option(
      '-p, --pid <pid>',
      'nginx worker pid, or a master pid for all its workers (with --container: the pid as seen inside the container)',
      integerIn('pid', 1, 2 ** 22),
    )
    .option('--container <name|id>', "a Docker container's name or id (prefix): profile all its nginx workers", containerRef)
    .argument('[command...]', 'a load to run while sampling, after --: sampling starts before it and ends when it does')
    .option(
      '-d, --duration <seconds>',
      'how long to sample (with a command: at most this long, default until it ends); Ctrl-C stops early and still writes the outputs',
      durationSeconds,
      30,
    )
    .option('-F, --frequency <hz>', 'samples per second per CPU', integerIn('frequency', 1, 10_000), 99)
    .option('-o, --output <file.svg>', 'flame graph to write', path('output'), 'flame.svg');
  addExportOptions(cmd);
  addGroupByOption(cmd);
  addLabelOptions(cmd);
  addModeOptions(cmd);
  cmd.addOption(new Option('--no-kernel', 'leave out kernel frames'));
  cmd.addOption(
    new Option('--lines <mode>', 'Lua frame lines: definition (frames aggregate per function) or current (the line running, also inside compiled traces)')
      .choices(['definition', 'current'])
      .default('definition'),
  );
  cmd.addOption(
    new Option('--btf <path>', 'kernel BTF the BPF programs are relocated against (CO-RE)').default(DEFAULT_BTF),
  );
  cmd.addOption(
    new Option('--unwind <mode>', 'native frames: cfi (.eh_frame, works without frame pointers) or fp (frame pointers only, cheaper)')
      .choices(['cfi', 'fp'])
      .default('cfi'),
  );
  cmd.option(
    '--max-stacks <n>',
    'unique stacks the kernel holds between two drains (one a second); samples of further stacks are counted as lost',
    integerIn('max-stacks', 1, MAX_STACKS_LIMIT),
    DEFAULT_MAX_STACKS,
  );
  addFlameGraphOptions(cmd);
  addLogOptions(cmd);
  // --pid is required unless --container names the target; commander's own
  // message when neither is given.
  cmd.hook('preAction', (self) => {
    const o = self.opts<ProfileOptions>();
    if (o.pid === undefined && o.container === undefined) self.error("error: required option '-p, --pid <pid>' not specified", { code: 'commander.missingMandatoryOptionValue' });
    if (self.args.length > 0) {
      self.setOptionValue('command', [...self.args]);
      self.setOptionValue('durationGiven', self.getOptionValueSource('duration') !== 'default');
    }
  });
  return cmd.addHelpText(
    'after',
    `
Examples:
  # 30 s of every worker of an APISIX instance (the master pid means: all its workers)
  sudo apisix-profile --pid $(cat /usr/local/apisix/logs/nginx.pid)

  # one worker for 10 s at 499 Hz, with folded stacks and a pprof profile
  sudo apisix-profile -p 4242 -d 10 -F 499 -o worker.svg --folded worker.folded --pprof worker.pb.gz

  # in CI: a Markdown summary (also appended to $GITHUB_STEP_SUMMARY) and a JSON one
  sudo apisix-profile -p "$MASTER" -d 20 --summary profile.md --json profile.json --folded after.folded

  # which plugin, which phase: the summary has both tables; the flame graph split by phase
  sudo apisix-profile -p "$MASTER" -d 30 --summary profile.md --group-by phase

  # which route: CPU by request URI path in the summary, the flame graph split by URI
  sudo apisix-profile -p "$MASTER" -d 30 --summary profile.md --label uri --group-by uri

  # where workers block (file I/O, os.execute, blocking sockets, FFI), weighted by time off the CPU;
  # the event loop's idle wait is totalled in the summary, not drawn
  sudo apisix-profile -p "$MASTER" -d 30 --mode off-cpu -o offcpu.svg --summary offcpu.md

  # APISIX in Docker, from the host: every nginx worker of the container (found
  # through the Docker Engine API on /var/run/docker.sock, or DOCKER_HOST=unix://...)
  sudo apisix-profile --container apisix -d 30

  # pid 7 as seen inside the container (docker top lists host pids)
  sudo apisix-profile --container 4dfb33317e45 --pid 7

  # sample exactly while a load runs; the JSON summary records wrk's requests
  # and the samples per request (diff --fail-on-samples compares them)
  sudo apisix-profile -p "$MASTER" --folded head.folded --json head.json -- wrk -t2 -c16 -d30s http://127.0.0.1:9080/hello

With a command: its stdout and stderr pass through (its stdout to stderr when an
output is - ); Ctrl-C or SIGTERM ends it too, and so does --duration when given.

Exit codes: 0 ok, 1 internal error, 2 bad arguments (also: the command after --
not found), 3 target not found, 4 permission denied, 5 kernel unsupported,
6 no samples, 7 target already being profiled, 8 a BPF program rejected by the
verifier, 10 a LuaJIT no offset table describes, 11 the command after -- failed
(the outputs are still written), 130 interrupted twice.
\`apisix-profile doctor\` checks this host, and a target with --pid.`,
  );
}

/** What to sample: host pids, and for container targets each one's pid inside the container. */
export interface ProfileTargets {
  pids: number[];
  /** Host pid -> pid inside the container (container targets only; grows as discover() finds workers). */
  containerPids: Map<number, number>;
  /** Names the target in titles: `pid 42`, `container apisix`, `container apisix pid 7`. */
  label: string;
  /** Current target pids, for workers a reload starts (see RunOptions.discover). */
  discover?: () => number[];
}

async function resolveTargets(opts: Pick<ProfileOptions, 'pid' | 'container'>, log: Logger): Promise<ProfileTargets> {
  if (opts.container !== undefined) return resolveContainerTargets(opts.container, opts.pid, log);
  const pid = opts.pid as number;
  const target = readProcess(pid);
  if (!target) throw new CliError(`no process with pid ${pid}: check the pid (e.g. pgrep -a nginx)`, ExitCode.TargetNotFound);
  const pids = expandTarget(target, listProcesses()).map((p) => p.pid);
  if (pids.length === 0) throw new CliError(`nginx master ${pid} has no worker processes`, ExitCode.TargetNotFound);
  if (pids.length > 1 || pids[0] !== pid) log.info({ master: pid, workers: pids }, `profiling ${pids.length} worker(s) of master ${pid}`);
  return { pids, containerPids: new Map(), label: `pid ${pid}`, discover: workersOfMaster(pid) };
}

/**
 * Why a profile has no samples: an idle target, or sampling events that
 * never fired for a target that did run (the kernel or a VM's clock).
 */
export function noSamplesText(targetCpuMs: number, pids: readonly number[]): string {
  // Below a few ticks of CPU time, 99 Hz may well see nothing.
  if (targetCpuMs < 100) return `no samples: the target did not run on a CPU during the profile (${targetCpuMs} ms of CPU time: is it idle? put load on it)`;
  return `no samples, though the target ran ${targetCpuMs} ms on a CPU during the profile: the sampling events did not fire for it; run \`apisix-profile doctor --pid ${pids[0]}\``;
}

/** The last log line. Container targets show `hostPid (containerPid in container):samples`. */
export function summaryLine(stats: RunStats, containerPids: ReadonlyMap<number, number> = new Map()): string {
  // Shares are of the samples that were counted: a lost one has no stack to say anything about.
  const counted = [...stats.perPid.values()].reduce((a, b) => a + b, 0);
  const share = (n: number, of: number) => (of ? ((100 * n) / of).toFixed(1) : '0.0');
  const pct = (n: number) => share(n, counted);
  const perPid = [...stats.perPid].map(([pid, n]) => `${describePid(pid, containerPids)}:${n}`).join(' ');
  const u = stats.unwind;
  // With .eh_frame unwinding, say how many walks reached the outermost
  // frame and why the others stopped; with frame pointers, how many stacks
  // were cut where frame pointers could not be trusted.
  const native =
    u.samples > 0
      ? `${share(u.complete, u.samples)}% of native walks complete (stopped early: ${u.noCfi} no CFI, ${u.badRead} bad read, ` +
        `${u.depth} depth limit, ${u.unsupported} unsupported CFI)`
      : `${pct(stats.nativeCutShort)}% with native frames cut at a missing frame pointer`;
  return (
    // Off-CPU profiles take no samples: their counts are µs blocked.
    (stats.mode === 'off-cpu' ? `off-CPU profile of ${stats.elapsedSec.toFixed(1)} s (µs blocked per pid: ${perPid || 'none'}); ` : `${stats.samples} samples in ${stats.elapsedSec.toFixed(1)} s (${perPid || 'none'}); `) +
    `${pct(stats.samplesInLua)}% in Lua; ${native}; ${stats.lostMapFull + stats.lostNoMemory} lost`
  );
}

/** What the run knows that the summaries show. */
export function summaryExtra(
  stats: RunStats,
  frequencyHz: number,
  title: string,
  containerPids: ReadonlyMap<number, number> = new Map(),
): SummaryExtra {
  return {
    title,
    frequencyHz,
    durationSec: Number(stats.elapsedSec.toFixed(3)),
    perPid: [...stats.perPid].map(([pid, samples]) => {
      const containerPid = containerPids.get(pid);
      return containerPid === undefined ? { pid, samples } : { pid, samples, containerPid };
    }),
    vmStates: { ...stats.vmStates },
    lost: stats.lostMapFull + stats.lostNoMemory,
    nativeCutShort: stats.nativeCutShort,
    counters: {
      samplesInLua: stats.samplesInLua,
      samplesWithoutG: stats.samplesWithoutG,
      luaBadReads: stats.luaBadReads,
      uprobeHits: stats.uprobeHits,
      unwoundSamples: stats.unwind.samples,
      unwindComplete: stats.unwind.complete,
      unwindStoppedNoCfi: stats.unwind.noCfi,
      unwindStoppedBadRead: stats.unwind.badRead,
      unwindStoppedDepth: stats.unwind.depth,
      unwindStoppedUnsupported: stats.unwind.unsupported,
    },
  };
}

export async function runProfileCommand(opts: ProfileOptions, ctx: RunContext): Promise<number> {
  const outputs = [{ flag: '--output', path: opts.output }, ...exportSpecs(opts)];
  checkOutputs(outputs);
  const { log, status } = openTerminal(opts, ctx);
  // The command is looked up now (exit 2 when missing), started once sampling is.
  // Its stdout goes to stderr when the profile writes an output to stdout.
  const toStdout = (text: string) => (status.enabled && process.stdout.isTTY ? status.write(text) : process.stdout.write(text));
  const load = opts.command
    ? new CommandLoad(
        opts.command,
        opts.durationGiven ? opts.duration : undefined,
        ctx.interrupts(),
        { stdout: outputs.some((o) => o.path === STDIO) ? (text) => status.write(text) : toStdout, stderr: (text) => status.write(text) },
        ctx.env,
      )
    : null;
  // Privileges (exit code 4), then the kernel release, BTF, the bpf()
  // syscall, perf events and uprobes (5): the checks `doctor` shows.
  assertProfilingPossible({ btfPath: opts.btf, env: ctx.env });
  if (!existsSync(bpfObjectPath())) {
    throw new CliError(`BPF object missing (${bpfObjectPath()}): run \`npm run build\``, ExitCode.Internal);
  }
  const targets = await resolveTargets(opts, log);
  const { pids, containerPids, label } = targets;
  const lock = lockTargets(pids);
  if ('busy' in lock) {
    throw new CliError(`pid ${lock.busy} is already being profiled by apisix-profile (pid ${lock.owner}): wait for it or stop it`, ExitCode.Busy);
  }
  // Released however the process ends (also by the second Ctrl-C's exit).
  process.once('exit', () => lock.release());

  const signal = ctx.interrupts();
  signal.addEventListener('abort', () => log.info(`${String(signal.reason)}: stopping early, writing what was sampled`), { once: true });

  // The live line: elapsed and remaining time, samples so far. It is
  // redrawn after each drain (about once a second), when the run wakes
  // anyway: a timer of its own woke the profiler four times a second, on
  // the CPUs the target runs on, and doubled its CPU time while sampling.
  let sampling: { began: number; samples: number } | null = null;
  const startMs = Date.now();
  const drawProgress = (): void => {
    if (!sampling) return;
    const elapsed = (Date.now() - sampling.began) / 1000;
    status.set(load ? load.progressText(elapsed, sampling.samples) : progressText(elapsed, opts.duration, sampling.samples));
  };
  const onPhase = (phase: 'sampling' | 'stopped'): void => {
    if (phase === 'sampling') load?.start();
    if (!status.enabled) return;
    if (phase === 'sampling') {
      sampling = { began: Date.now(), samples: 0 };
      drawProgress();
    } else {
      sampling = null;
      status.set('sampling stopped: reading the last samples and naming frames');
    }
  };

  let result;
  let command: CommandRun | null = null;
  try {
    result = await runProfile({
      pids,
      durationSec: load?.durationSec ?? opts.duration,
      frequency: opts.frequency,
      kernelStacks: opts.kernel,
      lines: opts.lines,
      unwind: opts.unwind,
      btfPath: opts.btf === DEFAULT_BTF ? undefined : opts.btf,
      maxStacks: opts.maxStacks,
      mode: opts.mode,
      includeIdle: opts.includeIdle === true,
      // --group-by uri needs the labels: it asks for them.
      labelUri: opts.label === 'uri' || opts.groupBy === 'uri',
      ...(opts.maxLabels !== undefined ? { maxLabels: opts.maxLabels } : {}),
      ...(targets.discover ? { discover: targets.discover } : {}),
      log,
      signal: load?.signal ?? signal,
      onPhase,
      onProgress: (samples) => {
        if (!sampling) return;
        sampling.samples = samples;
        drawProgress();
      },
    });
  } finally {
    status.clear();
    // Also when the run failed: the command is asked to end and waited for.
    if (load) command = await load.finish();
  }

  const { stats } = result;
  // The URI table is counted from the labels; the other outputs keep them only with --group-by uri.
  const uris = opts.groupBy === 'uri' ? undefined : uriCounts(result.stacks);
  const stacks = groupedStacks(uris ? withoutUriFrames(result.stacks) : result.stacks, opts);
  const title = opts.title ?? 'apisix-profile';
  const svg = renderFlameGraph(
    stacks,
    { ...flameGraphOptions(opts, { title, subtitle: modeSubtitle(label, stats, opts) }), unit: countUnit(timeWeight(opts.mode)) },
  );
  writeOutput(opts.output, svg);
  writeExports(
    stacks,
    opts,
    {
      name: `apisix-profile ${label}`,
      frequencyHz: opts.frequency,
      durationSec: stats.elapsedSec,
      startMs,
      time: timeWeight(opts.mode),
      summary: {
        ...summaryExtra(stats, opts.frequency, opts.title ?? `apisix-profile: ${label}`, containerPids),
        time: timeTotals(stats, opts),
        ...(uris ? { uris } : {}),
        ...(command ? { command } : {}),
      },
    },
    log,
    ctx.env,
  );
  const written = Object.fromEntries(outputs.map((s) => [s.flag.slice(2), s.path]));
  if (command) log.info({ command }, commandLine(command, stats.samples, opts.frequency));
  const where = containerPids.size > 0 ? { containerPids: Object.fromEntries(containerPids) } : {};
  log.info({ ...written, ...where }, [summaryLine(stats, containerPids), modeLine(stats)].filter(Boolean).join('; '));
  if (stats.lostMapFull > 0) {
    log.warn(
      { lost: stats.lostMapFull, maxStacks: opts.maxStacks },
      `${stats.lostMapFull} samples lost: more unique stacks within a second than --max-stacks ${opts.maxStacks}; consider increasing it`,
    );
  }
  if (stats.lostNoMemory > 0) {
    log.warn(
      { lostNoMemory: stats.lostNoMemory },
      `${stats.lostNoMemory} samples lost: the kernel could not allocate a copy of their stack while sampling`,
    );
  }
  if (command && (command.non2xxResponses ?? 0) + (command.socketErrors ?? 0) > 0) {
    log.warn(
      `${command.non2xxResponses ?? 0} non-2xx responses and ${command.socketErrors ?? 0} socket errors in the load: ` +
        'samples per request count them too, so check the load before comparing runs',
    );
  }
  if (command && commandFailed(command)) {
    log.error({ command }, `the load failed: ${commandText(command.argv)} ${endText(command)}; the outputs were written, but they profile an incomplete load`);
    return ExitCode.CommandFailed;
  }
  const onlyIdle = onlyIdleText(stats, opts.includeIdle === true);
  if (onlyIdle) log.warn(onlyIdle);
  if (nothingMeasured(stats)) {
    log.warn(opts.mode === 'cpu' ? noSamplesText(stats.targetCpuMs, pids) : `nothing measured: no target thread ${opts.mode === 'wall' ? 'ran or ' : ''}blocked while the profile ran (an idle worker waits in one epoll_wait: put load on it)`);
    return ExitCode.NoSamples;
  }
  return ExitCode.Ok;
}

/** The log line about the load, e.g. `wrk -d5s http://... exited with status 0 after 5.1 s: 4102 requests, 1.21 samples per request`. */
export function commandLine(command: CommandRun, samples: number, frequencyHz: number): string {
  const cost = requestCost(samples, frequencyHz, command.requests);
  const work =
    command.requests === undefined
      ? 'no request count in its output (wrk and wrk2 print one)'
      : `${command.requests} requests${cost ? `, ${cost.samplesPerRequest.toPrecision(4)} samples per request (${cost.cpuMsPerRequest.toPrecision(4)} ms of CPU)` : ''}`;
  return `${commandText(command.argv)} ${endText(command)}: ${work}`;
}
