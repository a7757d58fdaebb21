// What one counted stack weighs, and what kind of time it is. In CPU mode
// a stack's count is samples. In off-CPU and wall modes every output is in
// time (microseconds): the kernel adds nanoseconds off the CPU to a blocked
// stack's count, and wall mode turns each CPU sample into the time it
// stands for (1/frequency). A worker waiting in its event loop with no Lua
// running is [idle]: time the worker was free, not a stall, so it is left
// out of the graph and the shares unless asked for, and totalled apart.
import { SampleFlags } from '../native/abi.js';
import { IDLE_ROOT, OFF_CPU_LEAF } from '../report/folded-time.js';
import type { ProfileMode } from '../native/profiler-object.js';

export type { ProfileMode } from '../native/profiler-object.js';

/** Root frame of the event loop's idle wait (with --include-idle); report/ reads it back. */
export const IDLE_FRAME = IDLE_ROOT;
/** Leaf pseudo-frame of a blocked stack in wall mode: on- and off-CPU parts of a path side by side. */
export const OFF_CPU_FRAME = OFF_CPU_LEAF;

/**
 * Frames that mean "the worker waits for its next event": nginx's epoll
 * module (and the libc/kernel calls under it) and an idle thread-pool
 * thread. A Lua coroutine waiting on a cosocket is in this wait too: its
 * worker is free meanwhile, so that time is idle for the worker.
 */
const IDLE_WAIT_FRAMES = new Set([
  'ngx_epoll_process_events',
  'epoll_wait',
  'epoll_pwait',
  'do_epoll_wait_[k]',
  'ngx_thread_pool_cycle',
  // A thread already waiting when the profile started (blocked-at-start.ts).
  '[syscall epoll_wait]',
  '[syscall epoll_pwait]',
  '[syscall epoll_pwait2]',
]);

/** An off-CPU stack with no Lua frame whose thread waits for events. */
export function isIdleWait(frames: readonly string[], inLua: boolean): boolean {
  return !inLua && frames.some((f) => IDLE_WAIT_FRAMES.has(f));
}

export interface WeightContext {
  mode: ProfileMode;
  /** CPU samples per second (wall mode: a sample weighs 1e6/frequency µs). */
  frequencyHz: number;
}

/** A counted stack's weight in the profile's unit: samples (CPU mode) or whole microseconds. */
export function stackWeight(flags: number, count: number, ctx: WeightContext): number {
  if (ctx.mode === 'cpu') return count;
  if (flags & SampleFlags.OffCpu) return Math.round(count / 1000);
  return Math.round((count * 1e6) / ctx.frequencyHz);
}

/** What a profile's weights are: the outputs name their unit from it. */
export type WeightUnit = 'samples' | 'microseconds';

export function weightUnit(mode: ProfileMode): WeightUnit {
  return mode === 'cpu' ? 'samples' : 'microseconds';
}

/** Where off-CPU time went, in µs (RunStats.offCpu). */
export interface OffCpuTotals {
  /** Blocked, not idle: in the graph. */
  blockedUs: number;
  /** ... of which with Lua frames on the stack. */
  blockedInLuaUs: number;
  /** The event loop's wait (left out of the graph unless --include-idle). */
  idleUs: number;
  /** Wall mode: CPU samples as time. */
  onCpuUs: number;
  /** Threads that blocked / were preempted (switches counted by the kernel). */
  switchesBlocked: number;
  switchesPreempted: number;
  /** Time preempted threads waited for a CPU: runnable, so not off-CPU time. */
  preemptedUs: number;
  /** Blocked switches not counted (a map full, or a sample tore the walk in wall mode). */
  lost: number;
  /** Idle waits that reused the stack of the thread's last one, unwalked (bpf/profiler.bpf.c idle_wait). */
  idleReused: number;
}

export function emptyOffCpuTotals(): OffCpuTotals {
  return { blockedUs: 0, blockedInLuaUs: 0, idleUs: 0, onCpuUs: 0, switchesBlocked: 0, switchesPreempted: 0, preemptedUs: 0, lost: 0, idleReused: 0 };
}

/**
 * A blocked stack's kernel frames end in the scheduler's switch itself
 * (__schedule, the tracepoint, the BPF program): the same for every
 * stack, so they are cut and the function that chose to sleep
 * (schedule, schedule_timeout, ...) is the leaf, as in other off-CPU tools.
 */
export function trimSwitchFrames(frames: string[]): string[] {
  const at = frames.findIndex((f) => f === '__schedule_[k]' || f === '__traceiter_sched_switch_[k]');
  return at > 0 ? frames.slice(0, at) : frames;
}

/**
 * One counted stack into the profile: its frames as the outputs show them
 * (null: left out, idle), and its time added to the totals.
 */
export function placeStack(
  frames: string[],
  flags: number,
  weight: number,
  ctx: WeightContext & { includeIdle: boolean },
  totals: OffCpuTotals,
): string[] | null {
  if (ctx.mode === 'cpu') return frames;
  if (!(flags & SampleFlags.OffCpu)) {
    totals.onCpuUs += weight;
    return frames;
  }
  const inLua = (flags & SampleFlags.InLua) !== 0;
  frames = trimSwitchFrames(frames);
  if (isIdleWait(frames, inLua)) {
    totals.idleUs += weight;
    return ctx.includeIdle ? [IDLE_FRAME, ...frames] : null;
  }
  totals.blockedUs += weight;
  if (inLua) totals.blockedInLuaUs += weight;
  return ctx.mode === 'wall' ? [...frames, OFF_CPU_FRAME] : frames;
}
