// `--container NAME|ID-PREFIX [--pid PID-IN-CONTAINER]` -> the host pids to
// profile: the container's nginx masters and workers, each worker with its
// pid as seen inside the container. The matching over process lists is pure
// (resolveContainerProcesses); resolveContainer adds the Docker API and /proc.
import { processesInContainer, readProcCgroup } from './cgroup.js';
import { assertRunning, ContainerError, DockerClient, type ContainerInfo, type DockerClientOptions } from './docker.js';
import { hostPidForContainerPid, pidAtLevel, readNSpid } from './namespaces.js';
import { expandTarget, isNginxMaster, isNginxWorker, listProcesses, type ProcessInfo } from './processes.js';

export interface ContainerProcess extends ProcessInfo {
  /** Raw /proc/<pid>/cgroup text (null when unreadable). */
  cgroup: string | null;
  /** NSpid from /proc/<pid>/status (null when unknown). */
  nspid: number[] | null;
}

export interface ContainerPid {
  /** Pid in our (the profiler's) pid namespace: the one to profile. */
  hostPid: number;
  /** Pid as seen inside the container. */
  containerPid: number;
}

export interface ResolvedContainer {
  container: ContainerInfo;
  /** Host pids of the nginx masters concerned (usually one). */
  masterPids: number[];
  /** The workers to profile, sorted by host pid. */
  workers: ContainerPid[];
  /** With pidInContainer: that process, mapped. */
  target?: ContainerPid;
}

export interface ResolveOptions {
  /** A pid as seen inside the container: profile it (a master: its workers). */
  pidInContainer?: number;
}

/**
 * Pure: picks the nginx processes of `container` out of `procs` (every
 * process we can see, with cgroup and NSpid). Without pidInContainer: all
 * masters and all workers of the container ('no-nginx' when there is no
 * master). With it: that process, or its workers when it is a master
 * ('no-such-pid-in-container' when the container has no such pid).
 */
export function resolveContainerProcesses(
  container: ContainerInfo,
  procs: ContainerProcess[],
  options: ResolveOptions = {},
): ResolvedContainer {
  assertRunning(container);
  const label = container.name || container.id.slice(0, 12);
  const members = processesInContainer(container.id, container.pid, procs);
  if (members.length === 0) {
    throw new ContainerError(
      'not-visible',
      `container ${label} runs, but none of its processes is visible here (init pid ${container.pid}): run the profiler in the host pid namespace (docker run --pid=host)`,
    );
  }
  // Depth of the container's pid namespace in ours: from its init's NSpid.
  const init = members.find((p) => p.pid === container.pid);
  const level = init?.nspid ? init.nspid.length - 1 : undefined;
  const mapped = (p: ContainerProcess): ContainerPid | null => {
    const containerPid = p.nspid ? pidAtLevel(p.nspid, level) : undefined;
    return containerPid === undefined ? null : { hostPid: p.pid, containerPid };
  };
  const mapAll = (list: ContainerProcess[]): ContainerPid[] =>
    list.map(mapped).filter((x): x is ContainerPid => x !== null).sort((a, b) => a.hostPid - b.hostPid);

  if (options.pidInContainer !== undefined) {
    const want = options.pidInContainer;
    const hostPid = hostPidForContainerPid(want, members, level);
    const target = hostPid === null ? undefined : members.find((p) => p.pid === hostPid);
    const targetPid = target ? mapped(target) : null;
    if (!target || !targetPid) {
      throw new ContainerError(
        'no-such-pid-in-container',
        `container ${label} has no process with pid ${want} (give the pid as seen inside the container; docker top ${label} lists host pids)`,
      );
    }
    return {
      container,
      masterPids: isNginxMaster(target) ? [target.pid] : [],
      workers: mapAll(expandTarget(target, members) as ContainerProcess[]),
      target: targetPid,
    };
  }

  const masters = members.filter(isNginxMaster);
  if (masters.length === 0) {
    throw new ContainerError('no-nginx', `container ${label} runs no nginx master process`);
  }
  return {
    container,
    masterPids: masters.map((p) => p.pid).sort((a, b) => a - b),
    workers: mapAll(members.filter(isNginxWorker)),
  };
}

/** Every visible process with its cgroup text; NSpid is filled in later, for members only. */
export function readProcessesWithCgroups(procRoot = '/proc'): ContainerProcess[] {
  return listProcesses(procRoot).map((p) => ({ ...p, cgroup: readProcCgroup(p.pid, procRoot), nspid: null }));
}

export interface ResolveContainerOptions extends ResolveOptions {
  docker?: DockerClientOptions;
  procRoot?: string;
}

/** Docker API + /proc: see resolveContainerProcesses. */
export async function resolveContainer(ref: string, options: ResolveContainerOptions = {}): Promise<ResolvedContainer> {
  const procRoot = options.procRoot ?? '/proc';
  const container = await new DockerClient(options.docker).inspectContainer(ref);
  assertRunning(container);
  const all = readProcessesWithCgroups(procRoot);
  const members = processesInContainer(container.id, container.pid, all);
  for (const p of members) p.nspid = readNSpid(p.pid, procRoot);
  // Members whose status vanished have exited meanwhile: leave them out.
  const live = members.filter((p) => p.nspid !== null);
  return resolveContainerProcesses(container, live.length > 0 ? live : members, options);
}
