// The one binary search the code needs: in a list sorted by a bigint key
// (symbol starts, FDE starts, unwind rows, mappings), the last entry whose
// key is <= x.

/** Index of the last i in [0, length) with keyAt(i) <= x, or -1; keys ascending. */
export function lastAtOrBelow(length: number, keyAt: (i: number) => bigint, x: bigint): number {
  let lo = 0;
  let hi = length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (keyAt(mid) <= x) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
