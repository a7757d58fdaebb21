// Pid namespaces: the pid of a process as seen in each nested namespace
// (NSpid in /proc/<pid>/status), and whether a process lives in another pid
// namespace than the profiler. Pure parsers plus thin readers.
import { readFileSync, readlinkSync } from 'node:fs';

/**
 * Parses the `NSpid:` line of /proc/<pid>/status: the pid in the reader's
 * (procfs mount's) namespace first, then the pid in each nested namespace;
 * the last is the innermost (the pid a container sees). Null when the line
 * is missing (kernels before 4.1) or malformed.
 */
export function parseNSpid(statusText: string): number[] | null {
  const m = /^NSpid:[ \t]*([^\n]*)$/m.exec(statusText);
  if (!m) return null;
  const fields = m[1].trim().split(/\s+/);
  if (fields.length === 0 || !fields.every((f) => /^\d+$/.test(f))) return null;
  return fields.map(Number);
}

/** The pid at namespace depth `level` (0 = ours); innermost when omitted. */
export function pidAtLevel(nspid: number[], level?: number): number | undefined {
  return level === undefined ? nspid[nspid.length - 1] : nspid[level];
}

export interface NamespacedProcess {
  /** Pid in our namespace. */
  pid: number;
  /** Parsed NSpid, or null when unknown. */
  nspid: number[] | null;
}

/**
 * Our pid for the process that has pid `containerPid` inside the container.
 * `candidates` should be the container's processes; `level` is the depth of
 * the container's pid namespace (its init's NSpid length - 1), default the
 * innermost namespace of each candidate. When processes of nested namespaces
 * match too, the shallowest one wins. Null when none matches.
 */
export function hostPidForContainerPid(containerPid: number, candidates: NamespacedProcess[], level?: number): number | null {
  let best: NamespacedProcess | null = null;
  for (const c of candidates) {
    if (!c.nspid || pidAtLevel(c.nspid, level) !== containerPid) continue;
    if (!best || (best.nspid as number[]).length > c.nspid.length || ((best.nspid as number[]).length === c.nspid.length && c.pid < best.pid)) {
      best = c;
    }
  }
  return best ? best.pid : null;
}

/** Parses a namespace link such as `pid:[4026531836]`. */
export function parseNamespaceLink(link: string): { type: string; inode: number } | null {
  const m = /^([a-z_]+):\[(\d+)\]$/.exec(link.trim());
  return m ? { type: m[1], inode: Number(m[2]) } : null;
}

/** Reads NSpid of a process; null when it is gone or the line is missing. */
export function readNSpid(pid: number, procRoot = '/proc'): number[] | null {
  try {
    return parseNSpid(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

/** The namespace link of a process (`pid:[4026531836]`); null when unreadable. */
export function readNamespace(pid: number | 'self', type = 'pid', procRoot = '/proc'): string | null {
  try {
    return readlinkSync(`${procRoot}/${pid}/ns/${type}`);
  } catch {
    return null;
  }
}

/**
 * Whether `pid` lives in another pid namespace than this process (compares
 * the /proc/<pid>/ns/pid and /proc/self/ns/pid links). Null when either
 * link cannot be read (process gone, or no permission: needs ptrace access).
 */
export function inOtherPidNamespace(pid: number, procRoot = '/proc'): boolean | null {
  const ours = readNamespace('self', 'pid', procRoot);
  const theirs = readNamespace(pid, 'pid', procRoot);
  if (ours === null || theirs === null) return null;
  return ours !== theirs;
}
