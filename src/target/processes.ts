// Turns the pid a user gave into the processes to profile: a worker stands
// for itself, an nginx master for all its workers.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

/** Parses /proc/<pid>/stat; comm may hold spaces and parentheses. */
/** A /proc/<pid>/stat line: pid, name, parent, and CPU time (utime + stime, in clock ticks). */
export function parseStat(text: string): { pid: number; comm: string; ppid: number; cpuTicks: number } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error('malformed /proc stat line');
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): utime and stime are fields 14 and 15.
  return { pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), ppid: Number(rest[1]), cpuTicks: Number(rest[11]) + Number(rest[12]) };
}

export function readProcess(pid: number, procRoot = '/proc'): ProcessInfo | null {
  try {
    const stat = parseStat(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'));
    const cmdline = readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
    return { pid, ppid: stat.ppid, comm: stat.comm, cmdline };
  } catch {
    return null;
  }
}

/**
 * CPU time the process has used so far, in ms (clock ticks of 10 ms, the
 * USER_HZ Linux reports on every architecture we run on); null once gone.
 */
export function cpuTimeMs(pid: number, procRoot = '/proc'): number | null {
  try {
    return parseStat(readFileSync(`${procRoot}/${pid}/stat`, 'utf8')).cpuTicks * 10;
  } catch {
    return null;
  }
}

export function listProcesses(procRoot = '/proc'): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const name of readdirSync(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProcess(Number(name), procRoot);
    if (info) out.push(info);
  }
  return out;
}

export function isNginxMaster(p: ProcessInfo): boolean {
  return p.cmdline.startsWith('nginx: master process');
}

export function isNginxWorker(p: ProcessInfo): boolean {
  return p.cmdline.startsWith('nginx: worker process');
}

/**
 * The processes that stand for `target`: an nginx master's worker children,
 * or the process itself. Pure over a process list so it can be tested.
 */
export function expandTarget(target: ProcessInfo, all: ProcessInfo[]): ProcessInfo[] {
  if (!isNginxMaster(target)) return [target];
  return all.filter((p) => p.ppid === target.pid && isNginxWorker(p)).sort((a, b) => a.pid - b.pid);
}

/**
 * For an nginx master: a function listing its current workers, so a
 * profile picks up workers that a reload starts. Undefined otherwise.
 */
export function workersOfMaster(pid: number, procRoot = '/proc'): (() => number[]) | undefined {
  const target = readProcess(pid, procRoot);
  if (!target || !isNginxMaster(target)) return undefined;
  // Asked every second while sampling, on the CPUs the target runs on: one
  // read of the master's children list, and a look at a child only until
  // it has become a worker (a new child carries the master's title until
  // it sets its own, so one not yet a worker is looked at again).
  const workers = new Set<number>();
  return () => {
    const children = childPids(pid, procRoot);
    if (children === null) {
      if (!readProcess(pid, procRoot)) return [];
      return expandTarget(target, listProcesses(procRoot)).map((p) => p.pid);
    }
    for (const known of workers) if (!children.includes(known)) workers.delete(known);
    for (const child of children) {
      if (workers.has(child)) continue;
      const p = readProcess(child, procRoot);
      if (p && p.ppid === pid && isNginxWorker(p)) workers.add(child);
    }
    return [...workers].sort((a, b) => a - b);
  };
}

/** Pids in /proc/<pid>/task/<pid>/children; null when it cannot be read (process gone, or a kernel without CONFIG_PROC_CHILDREN). */
function childPids(pid: number, procRoot: string): number[] | null {
  try {
    return readFileSync(`${procRoot}/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  } catch {
    return null;
  }
}
