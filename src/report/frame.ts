// Helpers shared by the exporters: taking a frame name apart, and merging
// stacks into a stable order.

import { frameKind } from './flamegraph/color.js';
import type { Stack } from './stack.js';

/** The parts of a Lua frame name `name (chunk:line)` or `(chunk:line)`. */
export interface LuaFrame {
  /** Function name; '' for an anonymous function. */
  name: string;
  /** Chunk name as shown in the frame (a file path, or e.g. `content_by_lua(nginx.conf:40)`). */
  chunk: string;
  line: number;
}

// The location starts at the first " (" (or a leading "("): Lua function
// names have no spaces, while chunk names may contain ":" and parentheses.
const LUA_PARTS = /^(?:(.*?)\s)?\((.*):(\d+)\)$/s;
// stapxx (lj-lua-stacks, ngx-sample-lua-bt): `@chunk:line` or `=chunk:line`,
// `T:` in front for a frame in compiled code. No function name.
const STAPXX_PARTS = /^(?:T:)?[@=](.*):(\d+)$/s;

/**
 * Split a Lua frame name into its parts; null for any other kind of frame.
 * Reads our own frames and stapxx's (`@/app/work.lua:12`, name '').
 */
export function parseLuaFrame(frame: string): LuaFrame | null {
  if (frameKind(frame) !== 'lua') return null;
  const m = LUA_PARTS.exec(frame);
  const s = m ? null : STAPXX_PARTS.exec(frame);
  const line = Number(m ? m[3] : s?.[2]);
  if ((!m && !s) || !Number.isSafeInteger(line)) return null;
  return m ? { name: m[1] ?? '', chunk: m[2], line } : { name: '', chunk: s![1], line };
}

export function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`stack count must be a non-negative integer, got ${String(count)}`);
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
export function mergeIdentical(stacks: readonly Stack[]): Stack[] {
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
  return [...merged.values()].sort((a, b) => compareFrames(a.frames, b.frames));
}
