// Folded stacks: one line per unique stack, `root;...;leaf <count>`.
// This is the interchange format with flamegraph.pl, inferno and speedscope.

import { isSafeFrameName } from './frame.js';
import { byCodeUnits, type Stack, type UniqueStacks } from './stack.js';

/**
 * Folded text: one line per stack, `root;...;leaf <count>`, lines in
 * code-unit order of their text (independent of locale), ending with a
 * newline; empty input gives an empty string. The stacks come merged
 * (mergeIdentical) with safe names (safeFrameName, where each was made): a
 * name that would split a frame or end the line is a bug, and throws.
 */
export function foldStacks(stacks: UniqueStacks): string {
  const lines = stacks.map((stack) => {
    for (const frame of stack.frames) {
      if (!isSafeFrameName(frame)) throw new Error(`frame name not made safe where it was made: ${JSON.stringify(frame)}`);
    }
    return `${stack.frames.join(';')} ${stack.count}\n`;
  });
  return lines.sort(byCodeUnits).join('');
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
