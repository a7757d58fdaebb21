/**
 * One sampled call stack and how often it was seen.
 *
 * `frames` is ordered root first (outermost caller) to leaf (where the CPU
 * was), the same order as a folded-stacks line.
 */
export interface Stack {
  frames: string[];
  count: number;
}
