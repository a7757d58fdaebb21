// What a run's sample keys say beyond their stacks: samples per process and
// per VM state, how many were inside Lua, and why native walks stopped early.
import { SampleFlags, type SampleKey, VmState } from '../native/abi.js';
import type { OffCpuTotals, ProfileMode } from './weights.js';

export interface RunStats {
  samples: number;
  samplesInLua: number;
  /** Samples whose native frames were cut at an untrustworthy frame pointer. */
  nativeCutShort: number;
  /** .eh_frame unwinding: samples unwound, and why walks stopped early. */
  unwind: { samples: number; complete: number; noCfi: number; badRead: number; depth: number; unsupported: number };
  samplesWithoutG: number;
  lostMapFull: number;
  /** Samples lost because the kernel could not allocate their stack's copy. */
  lostNoMemory: number;
  luaBadReads: number;
  uprobeHits: number;
  perPid: Map<number, number>;
  /** Samples inside the VM by what it was doing (from G->vmstate). */
  vmStates: { interpreted: number; compiled: number; c: number; gc: number; jit: number; exit: number };
  elapsedSec: number;
  /** CPU time the targets used while sampling (from /proc), to tell an idle target from samples that never came. */
  targetCpuMs: number;
  /** What was measured (absent: CPU samples). perPid and the stacks are in µs when it is not 'cpu'. */
  mode?: ProfileMode;
  /** Off-CPU and wall modes: where the time went, idle and preemption included. */
  offCpu?: OffCpuTotals;
}

export function emptyStats(): RunStats {
  return {
    samples: 0,
    samplesInLua: 0,
    nativeCutShort: 0,
    unwind: { samples: 0, complete: 0, noCfi: 0, badRead: 0, depth: 0, unsupported: 0 },
    samplesWithoutG: 0,
    lostMapFull: 0,
    lostNoMemory: 0,
    luaBadReads: 0,
    uprobeHits: 0,
    perPid: new Map(),
    vmStates: { interpreted: 0, compiled: 0, c: 0, gc: 0, jit: 0, exit: 0 },
    elapsedSec: 0,
    targetCpuMs: 0,
  };
}

/** Adds count samples of one key (whose stack was cut short or not). */
export function countKey(stats: RunStats, key: SampleKey, count: number, nativeCutShort: boolean): void {
  stats.perPid.set(key.pid, (stats.perPid.get(key.pid) ?? 0) + count);
  if (key.flags & SampleFlags.InLua) {
    stats.samplesInLua += count;
    stats.vmStates[vmStateBucket(key.vmstate)] += count;
  }
  if (key.flags & SampleFlags.NoG) stats.samplesWithoutG += count;
  if (nativeCutShort) stats.nativeCutShort += count;
  if (key.flags & SampleFlags.UnwindCfi) {
    const u = stats.unwind;
    u.samples += count;
    if (key.flags & SampleFlags.UnwindEnd) u.complete += count;
    if (key.flags & SampleFlags.UnwindNoCfi) u.noCfi += count;
    if (key.flags & SampleFlags.UnwindBadRead) u.badRead += count;
    if (key.flags & SampleFlags.UnwindDepth) u.depth += count;
    if (key.flags & SampleFlags.UnwindUnsupported) u.unsupported += count;
  }
}

function vmStateBucket(vmstate: number): keyof RunStats['vmStates'] {
  if (vmstate >= 0) return 'compiled';
  switch (vmstate) {
    case VmState.Interp:
      return 'interpreted';
    case VmState.GC:
      return 'gc';
    case VmState.Exit:
      return 'exit';
    case VmState.Record:
    case VmState.Opt:
    case VmState.Asm:
      return 'jit';
    default:
      return 'c';
  }
}

