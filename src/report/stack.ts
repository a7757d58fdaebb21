// One sampled call stack and how often it was seen; and the one place where
// identical stacks are merged (a run's stacks, a folded file's lines), so
// every output takes stacks as they are.

/**
 * `frames` is ordered root first (outermost caller) to leaf (where the CPU
 * was), the same order as a folded-stacks line. Frame names are safe
 * (safeFrameName in ./frame.ts).
 */
export interface Stack {
  frames: string[];
  count: number;
}

declare const unique: unique symbol;
/** Stacks as mergeIdentical returns them: no two alike, none empty, sorted by frames. */
export type UniqueStacks = readonly Stack[] & { readonly [unique]: true };

/** A count (of samples, entries, ...) must be a non-negative integer: RangeError otherwise. */
export function checkCount(count: number, what = 'stack count'): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${String(count)}`);
  }
}

/** Code-unit order, independent of locale. */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compare frame lists element by element (a prefix sorts first). */
export function compareFrames(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = byCodeUnits(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/**
 * Merge identical stacks (same frames) by summing their counts, drop stacks
 * with a zero count or no frames, and sort by frames. Validates counts
 * (RangeError for a negative or non-integer one). The result does not share
 * frame arrays with the input.
 */
export function mergeIdentical(stacks: readonly Stack[]): UniqueStacks {
  const merged = new Map<string, Stack>();
  for (const stack of stacks) {
    checkCount(stack.count);
    if (stack.count === 0 || stack.frames.length === 0) continue;
    // JSON keeps frame boundaries unambiguous whatever the names contain.
    const key = JSON.stringify(stack.frames);
    const seen = merged.get(key);
    if (seen) seen.count += stack.count;
    else merged.set(key, { frames: [...stack.frames], count: stack.count });
  }
  return [...merged.values()].sort((a, b) => compareFrames(a.frames, b.frames)) as readonly Stack[] as UniqueStacks;
}

/** The samples in some stacks. */
export function totalCount(stacks: readonly { count: number }[]): number {
  return stacks.reduce((sum, s) => sum + s.count, 0);
}
