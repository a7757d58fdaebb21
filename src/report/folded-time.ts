// Where the time of an off-CPU or wall profile went, read back from its
// folded stacks alone (`report --mode off-cpu|wall`). `profile` marks what
// the totals need in the stacks themselves: the event loop's wait under an
// `[idle]` root (only with --include-idle) and, in wall mode, each blocked
// stack with an `[off-CPU]` leaf. What only the kernel counted (switches,
// preemptions, lost switches) is not in the file, so it stays absent
// rather than zero; so does idle time when the file holds no idle stack.
import { frameKind } from './frame.js';
import type { Stack } from './stack.js';
import type { TimeTotals } from './summary.js';
import type { TimeWeight } from './weight.js';

// Defined here, below profile/, whose src/profile/weights.ts writes them
// into the stacks under the names IDLE_FRAME and OFF_CPU_FRAME.
/** Root frame of the event loop's idle wait. */
export const IDLE_ROOT = '[idle]';
/** Leaf frame of a blocked stack in a wall profile. */
export const OFF_CPU_LEAF = '[off-CPU]';

/** Whether a stack is a blocked stack of a wall profile (its leaf is `[off-CPU]`). */
export function endsOffCpu(frames: readonly string[]): boolean {
  return frames.length > 0 && frames[frames.length - 1] === OFF_CPU_LEAF;
}

/**
 * The time totals of folded stacks whose counts are µs of `kind` time.
 * `[idle]`-rooted stacks are idle; in wall mode a stack is blocked when its
 * leaf is `[off-CPU]` (under an `[idle]` root too) and on the CPU
 * otherwise; in off-CPU mode every other stack is blocked. Blocked stacks
 * with a Lua frame anywhere count as blocked in Lua, as the kernel's in-Lua
 * flag does when profiling.
 */
export function foldedTimeTotals(stacks: readonly Stack[], kind: TimeWeight): TimeTotals {
  let idleUs = 0;
  let idleIncluded = false;
  let blockedUs = 0;
  let blockedInLuaUs = 0;
  let onCpuUs = 0;
  for (const { frames, count } of stacks) {
    // A wall profile's blocked stack stays blocked under an [idle] root:
    // profile never marks its idle wait [off-CPU], but --group-by phase
    // puts [idle] first on any stack it finds in the event loop.
    const blocked = kind === 'off_cpu' || endsOffCpu(frames);
    if (frames[0] === IDLE_ROOT && !(kind === 'wall' && blocked)) {
      idleIncluded = true;
      idleUs += count;
    } else if (!blocked) {
      onCpuUs += count;
    } else {
      blockedUs += count;
      if (frames.some((f) => frameKind(f) === 'lua')) blockedInLuaUs += count;
    }
  }
  return { kind, blockedUs, blockedInLuaUs, ...(idleIncluded ? { idleUs } : {}), idleIncluded, onCpuUs };
}
