// Folded stacks: one line per unique stack, `root;...;leaf <count>`.
// This is the interchange format with flamegraph.pl, inferno and speedscope.

import type { Stack } from './stack.js';

/**
 * Make a frame name safe for a folded line: `;` separates frames, and a line
 * break would end the record, so `;` becomes `:` and CR/LF become spaces.
 */
export function sanitizeFrame(name: string): string {
  return name.replace(/;/g, ':').replace(/\r\n|[\r\n]/g, ' ');
}

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`stack count must be a non-negative integer, got ${String(count)}`);
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Fold stacks into text: identical stacks (after sanitizing) are merged and
 * their counts summed; lines are sorted by the stack text (code-unit order,
 * independent of locale), and the text ends with a newline. Stacks with no
 * frames or a zero count cannot be written and are left out. Empty input
 * gives an empty string.
 */
export function foldStacks(stacks: Stack[]): string {
  const counts = new Map<string, number>();
  for (const stack of stacks) {
    checkCount(stack.count);
    if (stack.count === 0 || stack.frames.length === 0) continue;
    const key = stack.frames.map(sanitizeFrame).join(';');
    counts.set(key, (counts.get(key) ?? 0) + stack.count);
  }
  const keys = [...counts.keys()].sort(byCodeUnits);
  let out = '';
  for (const key of keys) out += `${key} ${counts.get(key)}\n`;
  return out;
}

/** Longest offending line text quoted in a parse error. */
const MAX_QUOTED = 80;

/**
 * Parse folded stacks. Accepts LF or CRLF line ends, blank lines, a leading
 * byte-order mark, surrounding whitespace, and frame names containing spaces
 * (the count is the last whitespace-separated token, as perf's and stapxx's
 * collapse scripts write it). Lines are returned in input order, not merged.
 *
 * Throws an Error naming the 1-based line number when a line has no stack or
 * no trailing integer count.
 */
export function parseFolded(text: string): Stack[] {
  const stacks: Stack[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const m = /^(.*\S)\s+(\d+)$/.exec(line);
    const count = m ? Number(m[2]) : NaN;
    if (!m || !Number.isSafeInteger(count)) {
      const quoted = line.length > MAX_QUOTED ? `${line.slice(0, MAX_QUOTED)}...` : line;
      throw new Error(`line ${i + 1}: expected "frames count", got ${JSON.stringify(quoted)}`);
    }
    stacks.push({ frames: m[1].split(';'), count });
  }
  return stacks;
}
