// `profile --container NAME|ID [--pid PID-IN-CONTAINER]`: the container
// branch of target resolution. Turns what resolveContainer found (Docker API
// + /proc) into the host pids to sample, each worker's pid inside the
// container for the outputs, a label for titles, and a way to find workers
// that a reload starts while the profile runs.
import type { Logger } from 'pino';
import { resolveContainer, type ContainerPid, type ResolveContainerOptions, type ResolvedContainer } from './container-target.js';
import { ContainerError } from './docker.js';
import { pidAtLevel, readNSpid } from './namespaces.js';
import { workersOfMaster } from './processes.js';

export interface ContainerTargets {
  /** Host pids to sample, ascending. */
  pids: number[];
  /**
   * Host pid -> pid inside the container, for every pid sampled; discover()
   * adds the workers it finds.
   */
  containerPids: Map<number, number>;
  /** Names the target in titles and logs: `container apisix`, `container apisix pid 7`. */
  label: string;
  /** The container's name and short (12-hex) id. */
  container: { name: string; id: string };
  /** Host pids of the nginx masters whose workers are sampled. */
  masterPids: number[];
  /**
   * The current workers of those masters (host pids), for runProfile's
   * `discover`; undefined when a single non-master process is profiled.
   */
  discover?: () => number[];
}

/** Pure: what resolveContainer found -> the targets (throws 'no-nginx' when there is no worker). */
export function containerTargets(resolved: ResolvedContainer, pidInContainer?: number): ContainerTargets {
  const { container } = resolved;
  const name = container.name || container.id.slice(0, 12);
  const label = pidInContainer === undefined ? `container ${name}` : `container ${name} pid ${pidInContainer}`;
  if (resolved.workers.length === 0) {
    const what =
      pidInContainer !== undefined
        ? `nginx master ${pidInContainer} in container ${name} has no worker processes`
        : `container ${name}: nginx master ${resolved.masterPids.join(', ')} has no worker processes`;
    throw new ContainerError('no-nginx', what);
  }
  const byHost = (a: ContainerPid, b: ContainerPid) => a.hostPid - b.hostPid;
  const workers = [...resolved.workers].sort(byHost);
  return {
    pids: workers.map((w) => w.hostPid),
    containerPids: new Map(workers.map((w) => [w.hostPid, w.containerPid])),
    label,
    container: { name, id: container.id.slice(0, 12) },
    masterPids: [...resolved.masterPids],
  };
}

/** `6792 (6 in container)`; the bare host pid when the container pid is unknown. */
export function describePid(hostPid: number, containerPids: ReadonlyMap<number, number>): string {
  const inside = containerPids.get(hostPid);
  return inside === undefined ? String(hostPid) : `${hostPid} (${inside} in container)`;
}

/** Docker client and /proc root (tests); the pid comes as its own argument. */
export type ResolveContainerTargetsOptions = Omit<ResolveContainerOptions, 'pidInContainer'>;

/**
 * Docker API + /proc: the targets of `--container ref [--pid pidInContainer]`.
 * Throws ContainerError (one line, with its exit code) when the daemon, the
 * container, its nginx or the pid cannot be found.
 */
export async function resolveContainerTargets(
  ref: string,
  pidInContainer: number | undefined,
  log: Logger,
  options: ResolveContainerTargetsOptions = {},
): Promise<ContainerTargets> {
  const procRoot = options.procRoot ?? '/proc';
  const resolved = await resolveContainer(ref, { ...options, procRoot, ...(pidInContainer !== undefined ? { pidInContainer } : {}) });
  const targets = containerTargets(resolved, pidInContainer);

  // Depth of the container's pid namespace in ours, from its init's NSpid.
  const initNSpid = readNSpid(resolved.container.pid, procRoot);
  const level = initNSpid ? initNSpid.length - 1 : undefined;
  const insidePid = (pid: number): number | undefined => {
    const nspid = readNSpid(pid, procRoot);
    return nspid ? pidAtLevel(nspid, level) : undefined;
  };

  // Workers a reload starts are children of the same masters; their pid in
  // the container is read from NSpid when they are first seen.
  const listers = targets.masterPids.map((m) => workersOfMaster(m, procRoot)).filter((f): f is () => number[] => f !== undefined);
  if (listers.length > 0) {
    targets.discover = () => {
      const pids = [...new Set(listers.flatMap((list) => list()))].sort((a, b) => a - b);
      for (const pid of pids) {
        if (targets.containerPids.has(pid)) continue;
        const inside = insidePid(pid);
        if (inside !== undefined) targets.containerPids.set(pid, inside);
      }
      return pids;
    };
  }

  const { name, id } = targets.container;
  const workers = targets.pids.map((pid) => describePid(pid, targets.containerPids));
  const masters = new Map<number, number>();
  for (const m of resolved.masterPids) {
    const inside = insidePid(m);
    if (inside !== undefined) masters.set(m, inside);
  }
  const single = resolved.masterPids.length === 0;
  log.info(
    {
      container: name,
      id,
      masters: resolved.masterPids,
      workers: targets.pids.map((pid) => ({ pid, containerPid: targets.containerPids.get(pid) })),
    },
    single
      ? `container ${name} (${id}): profiling pid ${workers.join(', ')}`
      : `container ${name} (${id}): profiling ${targets.pids.length} worker(s) of nginx master ${resolved.masterPids.map((m) => describePid(m, masters)).join(', ')}: ${workers.join(', ')}`,
  );
  return targets;
}
