// Which processes belong to a container: parses /proc/<pid>/cgroup and finds
// container ids in cgroup paths, with the init pid's process tree as a
// fallback where a cgroup namespace hides the paths. Pure over texts; the
// readers below are the only IO.
import { readFileSync } from 'node:fs';

export interface CgroupLine {
  /** Hierarchy id; 0 for the cgroup v2 (unified) line. */
  hierarchy: number;
  /** v1 controllers ('cpu', 'memory', 'name=systemd', ...); empty on the v2 line. */
  controllers: string[];
  /** Path relative to the reader's cgroup namespace root ('/' when hidden). */
  path: string;
}

/**
 * Parses /proc/<pid>/cgroup: v1 lines `N:ctrl,ctrl:/path`, the v2 line
 * `0::/path`. Lines that are not of that shape are skipped. The path keeps
 * any ':' it contains.
 */
export function parseProcCgroup(text: string): CgroupLine[] {
  const out: CgroupLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const id = line.slice(0, a);
    const path = line.slice(b + 1);
    if (!/^\d+$/.test(id) || !path.startsWith('/')) continue;
    const ctrl = line.slice(a + 1, b);
    out.push({ hierarchy: Number(id), controllers: ctrl === '' ? [] : ctrl.split(','), path });
  }
  return out;
}

// One path component naming a container: cgroupfs driver `<64hex>`, systemd
// driver `docker-<64hex>.scope`, and the same shapes from other runtimes
// (containerd, CRI-O, podman) for Kubernetes and friends.
const CONTAINER_SEGMENT = /^(?:docker-|cri-containerd-|crio-|libpod-)?([0-9a-f]{64})(?:\.scope)?$/;

/**
 * The container id in one cgroup path, or null: `/docker/<id>`,
 * `/system.slice/docker-<id>.scope`, the same under any prefix
 * (`/kubepods/.../<id>`, `/../docker-<id>.scope` from another cgroupns) or
 * followed by sub-cgroups (`.../docker-<id>.scope/init.scope`). When ids are
 * nested (Docker in Docker), the innermost one.
 */
export function containerIdFromCgroupPath(path: string): string | null {
  const parts = path.split('/');
  for (let i = parts.length - 1; i >= 0; i--) {
    const m = CONTAINER_SEGMENT.exec(parts[i]);
    if (m) return m[1];
  }
  return null;
}

/**
 * The container id of a process from its /proc/<pid>/cgroup text: the v2
 * line first, then the v1 lines in order. Null on the host, or when a
 * cgroup namespace shows every path as '/'.
 */
export function containerIdFromCgroup(text: string): string | null {
  const lines = parseProcCgroup(text);
  const ordered = [...lines.filter((l) => l.hierarchy === 0), ...lines.filter((l) => l.hierarchy !== 0)];
  for (const l of ordered) {
    const id = containerIdFromCgroupPath(l.path);
    if (id) return id;
  }
  return null;
}

/** True when any cgroup path of the process mentions `containerId`. */
export function cgroupMentions(text: string, containerId: string): boolean {
  const id = containerId.toLowerCase();
  return id !== '' && parseProcCgroup(text).some((l) => l.path.includes(id));
}

export interface CgroupProcess {
  pid: number;
  ppid: number;
  /** Raw /proc/<pid>/cgroup text; null when it could not be read. */
  cgroup: string | null;
}

/**
 * The processes of a container, sorted by pid: (a) those whose cgroup path
 * contains the container id (this also catches `docker exec` processes,
 * which are not descendants of the init process), plus (b) the container's
 * init process and its descendants by ppid, for readers whose cgroup
 * namespace hides the paths. (b) is not used when the init pid's own cgroup
 * names another container: the pid then came from another pid namespace.
 */
export function processesInContainer<T extends CgroupProcess>(containerId: string, initPid: number, procs: T[]): T[] {
  const members = new Set<number>();
  for (const p of procs) if (p.cgroup !== null && cgroupMentions(p.cgroup, containerId)) members.add(p.pid);

  const init = procs.find((p) => p.pid === initPid);
  const initElsewhere =
    init !== undefined && !members.has(initPid) && init.cgroup !== null && containerIdFromCgroup(init.cgroup) !== null;
  if (init !== undefined && !initElsewhere) {
    const children = new Map<number, number[]>();
    for (const p of procs) {
      const list = children.get(p.ppid);
      if (list) list.push(p.pid);
      else children.set(p.ppid, [p.pid]);
    }
    const queue = [initPid];
    const seen = new Set<number>();
    while (queue.length > 0) {
      const pid = queue.pop() as number;
      if (seen.has(pid)) continue;
      seen.add(pid);
      members.add(pid);
      for (const c of children.get(pid) ?? []) queue.push(c);
    }
  }
  return procs.filter((p) => members.has(p.pid)).sort((a, b) => a.pid - b.pid);
}

/** Reads /proc/<pid>/cgroup; null when the process is gone or unreadable. */
export function readProcCgroup(pid: number | 'self', procRoot = '/proc'): string | null {
  try {
    return readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
}
