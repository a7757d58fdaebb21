import { expect, it } from 'vitest';
import { lastAtOrBelow } from '../../src/search.js';

it('finds the last key <= x, or -1 before the first', () => {
  const keys = [10n, 20n, 20n, 30n];
  const at = (x: bigint) => lastAtOrBelow(keys.length, (i) => keys[i], x);
  expect(at(5n)).toBe(-1);
  expect(at(10n)).toBe(0);
  expect(at(19n)).toBe(0);
  expect(at(20n)).toBe(2);
  expect(at(29n)).toBe(2);
  expect(at(1000n)).toBe(3);
  expect(lastAtOrBelow(0, () => 0n, 1n)).toBe(-1);
});
