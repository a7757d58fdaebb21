// What a profiler run could leave behind in the kernel: the tests that stop
// profilers at awkward moments (hardening, watch) check all of it is gone.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { sleep } from './fixture.js';

/** Ids of the BPF programs a process holds open (from its fdinfo). */
export function programIdsOf(pid: number): number[] {
  const ids = new Set<number>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
      try {
        const m = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
        if (m) ids.add(Number(m[1]));
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* the process is gone */
  }
  return [...ids];
}

/**
 * Which of these programs are still loaded. They go away when the last file
 * descriptor does, after an RCU grace period: give the kernel a moment.
 */
export async function stillLoaded(ids: number[]): Promise<number[]> {
  const loaded = () => {
    const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as { id: number }[];
    return ids.filter((id) => all.some((p) => p.id === id));
  };
  for (let i = 0; i < 50 && loaded().length > 0; i++) await sleep(100);
  return loaded();
}

/** The uprobes registered through tracefs (ours are perf-event based and must never appear here). */
export function uprobeEvents(): string {
  for (const path of ['/sys/kernel/tracing/uprobe_events', '/sys/kernel/debug/tracing/uprobe_events']) {
    if (existsSync(path)) return readFileSync(path, 'utf8');
  }
  return '';
}
