// CPU% of a set of processes that changes between readings (workers a
// reload replaces): pure over readings of each process's CPU time.
//
// CPU% is the CPU time all the target's workers used in an interval,
// divided by the interval's wall time: percent of one core, summed over the
// workers (top's per-process %CPU, added up). Two workers each busy on a
// core of their own read 200%.

/** CPU time per pid (ms), read at one moment (seconds on a monotonic clock). */
export interface CpuReading {
  at: number;
  cpuMs: ReadonlyMap<number, number>;
}

/**
 * CPU% between two readings. Only processes in both count: a worker that
 * appeared since has no earlier figure to subtract (its first interval is
 * left out), one that exited took its last partial interval with it. A
 * pid whose figure went down is a new process under a reused pid: left out.
 */
export function cpuPercent(before: CpuReading, after: CpuReading): number {
  const wallMs = (after.at - before.at) * 1000;
  if (!(wallMs > 0)) return 0;
  let usedMs = 0;
  for (const [pid, ms] of after.cpuMs) {
    const was = before.cpuMs.get(pid);
    if (was !== undefined && ms >= was) usedMs += ms - was;
  }
  return (100 * usedMs) / wallMs;
}
