// What `watch` follows: the processes whose CPU time it reads each second,
// found again at each reading so workers a reload starts are counted and
// the ones it stops are not, and how to tell the profile the same target.
import type { Logger } from 'pino';
import { CliError, ExitCode } from '../errors.js';
import { cpuTimeMs, expandTarget, isNginxMaster, listProcesses, readProcess as readProcessIn, workersOfMaster } from '../target/processes.js';
import { resolveContainerTargets, type ResolveContainerTargetsOptions } from '../target/resolve-container-targets.js';
import type { CpuReading } from './cpu-meter.js';
import { targetTag } from './output-sets.js';

export interface WatchTarget {
  /** In file names: `pid1234`, `container-apisix`. */
  tag: string;
  /** In log lines: `pid 1234`, `container apisix`. */
  label: string;
  /** The same target for `apisix-profile profile`. */
  profileArgs: string[];
  /** The processes to read now; null once the target is gone (the master or the container's masters exited). */
  current(): number[] | null;
  /** Their CPU time now (`at`: seconds on a monotonic clock); one that exited meanwhile is left out. */
  readCpu(pids: readonly number[], at: number): CpuReading;
}

export interface WatchTargetRef {
  pid?: number;
  container?: string;
}

/** The Docker client and /proc root (tests give a fake dockerd and a fake /proc). */
export async function resolveWatchTarget(ref: WatchTargetRef, log: Logger, options: ResolveContainerTargetsOptions = {}): Promise<WatchTarget> {
  const procRoot = options.procRoot ?? '/proc';
  const readProcess = (pid: number) => readProcessIn(pid, procRoot);
  const readCpu = (pids: readonly number[], at: number) => readCpuIn(pids, at, procRoot);
  if (ref.container !== undefined) {
    const targets = await resolveContainerTargets(ref.container, undefined, log, { ...options, procRoot });
    const masters = targets.masterPids;
    const list = targets.discover ?? (() => targets.pids.filter((pid) => readProcess(pid) !== null));
    return {
      tag: targetTag({ container: ref.container }),
      label: targets.label,
      profileArgs: ['--container', ref.container],
      readCpu,
      current: () => {
        const pids = list();
        // No worker for a moment (a reload) is not the end; masters gone is.
        if (pids.length === 0 && (masters.length === 0 || masters.every((m) => readProcess(m) === null))) return null;
        return pids;
      },
    };
  }
  const pid = ref.pid as number;
  const proc = readProcess(pid);
  if (!proc) throw new CliError(`no process with pid ${pid}: check the pid (e.g. pgrep -a nginx)`, ExitCode.TargetNotFound);
  const base = { tag: targetTag({ pid }), label: `pid ${pid}`, profileArgs: ['--pid', String(pid)], readCpu };
  if (!isNginxMaster(proc)) {
    return { ...base, current: () => (readProcess(pid) === null ? null : [pid]) };
  }
  if (expandTarget(proc, listProcesses(procRoot)).length === 0) {
    throw new CliError(`nginx master ${pid} has no worker processes`, ExitCode.TargetNotFound);
  }
  const workers = workersOfMaster(pid, procRoot)!;
  return {
    ...base,
    current: () => {
      const pids = workers();
      if (pids.length === 0 && readProcess(pid) === null) return null;
      return pids;
    },
  };
}

function readCpuIn(pids: readonly number[], at: number, procRoot: string): CpuReading {
  const cpuMs = new Map<number, number>();
  for (const pid of pids) {
    const ms = cpuTimeMs(pid, procRoot);
    if (ms !== null) cpuMs.set(pid, ms);
  }
  return { at, cpuMs };
}
