// `apisix-profile watch --pid M | --container NAME --cpu-above PCT --out-dir DIR`:
// reads the workers' CPU time once a second (nothing in the kernel while
// idle) and, when it stays above the threshold, profiles and keeps the
// evidence. Runs until SIGTERM/SIGINT (exit 0) or until the target is gone
// (exit 3, for a service manager to restart it).
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { CliError, ExitCode } from '../errors.js';
import { assertProfilingPossible } from '../kernel/features.js';
import { bpfObjectPath } from '../profile/run.js';
import { startProfileChild } from '../watch/profile-child.js';
import { runWatch, type WatchSettings } from '../watch/watcher.js';
import { resolveWatchTarget } from '../watch/watch-target.js';
import { openTerminal, type RunContext } from './context.js';
import { addLogOptions, containerRef, durationSeconds, integerIn, path, type LogOptions } from './options.js';

export interface WatchOptions extends LogOptions {
  pid?: number;
  container?: string;
  cpuAbove: number;
  for: number;
  duration: number;
  cooldown: number;
  outDir: string;
  keep: number;
  frequency: number;
}

/** The highest CPU% the target can reach: every CPU of the host busy. */
export function maxCpuPercent(cpus = availableParallelism()): number {
  return 100 * cpus;
}

/** `--cpu-above`: a percentage of one core above 0, at most every CPU's worth. */
export function cpuAbove(max: number): (value: string) => number {
  return (value: string): number => {
    const n = Number(value.trim().replace(/%$/, ''));
    if (!/^(\d+(\.\d+)?|\.\d+)%?$/.test(value.trim()) || !(n > 0) || n >= max) {
      throw new InvalidArgumentError(
        `cpu-above must be a percentage of one core above 0 and below ${max} (${max / 100} CPUs here: 150 means one and a half cores busy)`,
      );
    }
    return n;
  };
}

export function watchCommand(): Command {
  const max = maxCpuPercent();
  const cmd = new Command('watch')
    .summary('profile automatically when the workers\' CPU stays high; keep the newest profiles')
    .description(
      'Read the CPU time of nginx workers once a second (nothing is loaded into the kernel while idle) and, when ' +
        'their CPU stays above --cpu-above for --for seconds, profile them for --duration and write a flame graph, ' +
        'folded stacks and a JSON summary into --out-dir, named by time (2026-12-05T06-01-02Z-pid1234.svg). ' +
        'CPU% is the CPU time of all the workers together per second of wall time: percent of one core, so two ' +
        'workers each busy on a core read 200%. Runs until SIGTERM/SIGINT (exit 0). Needs root.',
    )
    .option('-p, --pid <pid>', 'nginx master pid (all its workers, followed across reloads) or a single process', integerIn('pid', 1, 2 ** 22))
    .option('--container <name|id>', "a Docker container's name or id (prefix): all its nginx workers", containerRef)
    .requiredOption('--cpu-above <pct>', `CPU% (of one core, summed over the workers; up to ${max} here) that starts the clock`, cpuAbove(max))
    .option('--for <seconds>', 'how long the CPU must stay above --cpu-above, reading by reading, before a profile starts', integerIn('for', 1, 86_400), 10)
    .option('-d, --duration <seconds>', 'how long each profile samples', durationSeconds, 30)
    .option('--cooldown <seconds>', 'after a profile, how long before the clock may start again', integerIn('cooldown', 0, 7 * 86_400), 300)
    .requiredOption('--out-dir <dir>', 'where the profiles go (created if missing)', path('out-dir'))
    .option('--keep <n>', 'profiles (sets of .svg, .folded, .json) of this target kept in --out-dir; older ones are deleted', integerIn('keep', 1, 100_000), 20)
    .option('-F, --frequency <hz>', 'samples per second per CPU while profiling', integerIn('frequency', 1, 10_000), 99);
  addLogOptions(cmd);
  cmd.hook('preAction', (self) => {
    const o = self.opts<WatchOptions>();
    if (o.pid === undefined && o.container === undefined) self.error("error: required option '-p, --pid <pid>' or '--container <name|id>' not specified", { code: 'commander.missingMandatoryOptionValue' });
    if (o.pid !== undefined && o.container !== undefined) self.error('error: give --pid or --container, not both', { code: 'commander.conflictingOption' });
  });
  return cmd.addHelpText(
    'after',
    `
Examples:
  # APISIX's workers above 1.5 cores for 10 s: a 30 s profile into /var/lib/apisix-profile, newest 20 kept
  sudo apisix-profile watch --pid $(cat /usr/local/apisix/logs/nginx.pid) --cpu-above 150 --out-dir /var/lib/apisix-profile

  # a container, 60 s profiles, at most one every 30 minutes
  sudo apisix-profile watch --container apisix --cpu-above 300 --for 30 --duration 60 --cooldown 1800 --out-dir /var/lib/apisix-profile

One log line per profile (what tripped it, what was written). A profile is
\`apisix-profile profile\` run as a child process; its set appears when
whole (the .json last). docs/watch.md has a systemd unit.

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 internal error, 2 bad arguments
(also an --out-dir that cannot be written), 3 target not found or gone,
4 permission denied, 5 kernel unsupported, 130 interrupted twice.`,
  );
}

/**
 * --out-dir is a writable directory, or can be made: the nearest part of
 * it that exists is a writable directory. Checked before anything else and
 * made only once every other check passed, so a bad command leaves nothing.
 */
function checkOutDir(dir: string): void {
  const fail = (why: string): never => {
    throw new CliError(`cannot write profiles to --out-dir ${dir}: ${why}; give a writable directory`, ExitCode.BadArguments);
  };
  let existing = resolve(dir);
  while (!existsSync(existing)) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) fail(existing === resolve(dir) ? 'it is not a directory' : `${existing} is a file`);
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch {
    fail(`${existing} is not writable`);
  }
}

export async function runWatchCommand(opts: WatchOptions, ctx: RunContext): Promise<number> {
  checkOutDir(opts.outDir);
  const { log } = openTerminal(opts, ctx);
  // Fail now, not at the first spike hours later: the checks `profile` makes.
  assertProfilingPossible({ env: ctx.env });
  if (!existsSync(bpfObjectPath())) {
    throw new CliError(`BPF object missing (${bpfObjectPath()}): run \`npm run build\``, ExitCode.Internal);
  }
  const target = await resolveWatchTarget(opts, log);
  mkdirSync(opts.outDir, { recursive: true });
  const settings: WatchSettings = {
    cpuAbove: opts.cpuAbove,
    forSec: opts.for,
    cooldownSec: opts.cooldown,
    durationSec: opts.duration,
    frequency: opts.frequency,
    outDir: opts.outDir,
    keep: opts.keep,
  };
  const signal = ctx.interrupts();
  log.info(
    { target: target.label, ...settings },
    `watching ${target.label}: a ${opts.duration} s profile when CPU stays above ${opts.cpuAbove}% of one core for ${opts.for} s; ` +
      `into ${opts.outDir} (newest ${opts.keep} kept), then ${opts.cooldown} s of cooldown`,
  );
  const end = await runWatch(target, settings, { log, signal, startProfile: startProfileChild });
  if (end === 'target-gone') {
    throw new CliError(`${target.label} exited: nothing left to watch (a service manager can restart the watch with the new pid)`, ExitCode.TargetNotFound);
  }
  log.info(`${String(signal.reason)}: watch stopped`);
  return ExitCode.Ok;
}
