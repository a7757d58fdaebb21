// The end of an off-CPU or wall run: what the kernel still holds in its
// per-thread entries (offcpu_threads) and has not added to the counts.
import type { OffCpuThread } from '../native/abi.js';
import type { DrainedCounts } from '../native/profiler-object.js';

/**
 * What the threads' entries hold at the end of a run, as drained counts:
 * the idle time the kernel summed in place, and for threads still off the
 * CPU their time so far in the stack they blocked in (preempted ones are
 * not off-CPU time). bpf_ktime_get_ns and hrtime share CLOCK_MONOTONIC.
 */
export function offCpuLeftInThreads(threads: readonly OffCpuThread[], nowNs: bigint): DrainedCounts {
  const pairs: [Buffer, bigint][] = [];
  for (const t of threads) {
    if (t.idleNs > 0n && t.idleId.readBigUInt64LE(0) !== 0n) pairs.push([t.idleId, t.idleNs]);
    if (t.startNs > 0n && t.startNs <= nowNs && t.id.readBigUInt64LE(0) !== 0n) pairs.push([t.id, nowNs - t.startNs]);
  }
  const ids = Buffer.alloc(pairs.length * 8);
  const counts = Buffer.alloc(pairs.length * 8);
  pairs.forEach(([id, ns], i) => {
    id.copy(ids, i * 8);
    counts.writeBigUInt64LE(ns, i * 8);
  });
  return { ids, counts };
}
