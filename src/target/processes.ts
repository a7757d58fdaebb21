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
export function parseStat(text: string): { pid: number; comm: string; ppid: number } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error('malformed /proc stat line');
  const rest = text.slice(close + 2).split(' ');
  return { pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), ppid: Number(rest[1]) };
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
  // Asked every second while sampling: read the master's children list
  // instead of scanning all of /proc.
  return () => {
    const master = readProcess(pid, procRoot);
    if (!master) return [];
    return expandTarget(master, childProcesses(pid, procRoot)).map((p) => p.pid);
  };
}

/**
 * The children of pid, from /proc/<pid>/task/<pid>/children; from a scan of
 * every process where that file is missing (kernels without
 * CONFIG_PROC_CHILDREN).
 */
export function childProcesses(pid: number, procRoot = '/proc'): ProcessInfo[] {
  let text = '';
  try {
    text = readFileSync(`${procRoot}/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return listProcesses(procRoot).filter((p) => p.ppid === pid);
  }
  return text
    .trim()
    .split(/\s+/)
    .filter((x) => x !== '')
    .map((x) => readProcess(Number(x), procRoot))
    .filter((p): p is ProcessInfo => p !== null);
}
