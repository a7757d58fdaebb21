// The fixture's blocking handlers (fixtures/app/blocking.lua) against an
// off-CPU profile: which handler each blocked stack belongs to, and each
// handler's share of the blocked time, in the profile and in the handlers'
// own measurement (/block/truth).
import { parseFolded } from '../../src/report/fold.js';
import { definitionLine } from './fixture.js';

export const BLOCKING_FUNCTIONS = ['exec_sleep', 'pipe_read', 'ffi_usleep', 'ffi_poll'] as const;
export type BlockingFunction = (typeof BLOCKING_FUNCTIONS)[number];
/** Seconds each handler spent off the CPU, as /block/truth serves them. */
export type BlockingTruth = Record<BlockingFunction, number>;

/**
 * Which blocking function a stack blocked in: its Lua frame (by definition
 * line), or for the FFI calls, which a compiled trace may inline into their
 * caller, the C function called.
 */
export function blockedIn(frames: readonly string[]): BlockingFunction | null {
  for (const fn of BLOCKING_FUNCTIONS) {
    const line = definitionLine(fn, 'blocking.lua');
    if (frames.some((f) => f.endsWith(`blocking.lua:${line})`))) return fn;
  }
  if (!frames.some((f) => f.includes('blocking.lua:'))) return null;
  if (frames.includes('usleep')) return 'ffi_usleep';
  if (frames.includes('__poll') || frames.includes('poll')) return 'ffi_poll';
  return null;
}

/** Each function's share (%) of the blocked time in the blocking functions; onlyLeaf: stacks ending so. */
export function profileShares(folded: string, onlyLeaf?: string): Record<BlockingFunction, number> {
  const us = Object.fromEntries(BLOCKING_FUNCTIONS.map((f) => [f, 0])) as Record<BlockingFunction, number>;
  for (const s of parseFolded(folded)) {
    if (onlyLeaf && s.frames[s.frames.length - 1] !== onlyLeaf) continue;
    const fn = blockedIn(s.frames);
    if (fn) us[fn] += s.count;
  }
  return percentages(us);
}

export function truthShares(t: BlockingTruth): Record<BlockingFunction, number> {
  return percentages(t);
}

function percentages(v: Record<BlockingFunction, number>): Record<BlockingFunction, number> {
  const total = BLOCKING_FUNCTIONS.reduce((sum, f) => sum + v[f], 0);
  return Object.fromEntries(BLOCKING_FUNCTIONS.map((f) => [f, total ? (100 * v[f]) / total : 0])) as Record<BlockingFunction, number>;
}
