// Frame names: what kind of frame a name is, taking a Lua frame's name
// apart, and making a name safe for every output where it is made.

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

/**
 * A frame name as every output can carry it: `;` separates frames in a
 * folded line and a line break ends the record, so `;` becomes `:` and CR/LF
 * become spaces. Applied once, where a name is made (src/profile/assemble.ts);
 * names read from a folded file are safe already.
 */
export function safeFrameName(name: string): string {
  return name.replace(/;/g, ':').replace(/\r\n|[\r\n]/g, ' ');
}

/** Whether a name needs safeFrameName (outputs check, to catch a name made elsewhere). */
export function isSafeFrameName(name: string): boolean {
  return !/[;\r\n]/.test(name);
}

/**
 * - `lua`: `name (chunk:line)` or `(chunk:line)`; also the Lua frames of
 *   stapxx's lj-lua-stacks/ngx-sample-lua-bt collapsed output
 *   (`@/app/work.lua:12`, `=content_by_lua(nginx.conf:40):3`, and trace
 *   frames `T:@/app/work.lua:12`)
 * - `kernel`: names ending in `_[k]`
 * - `vm`: bracketed pseudo frames such as `[GC]`, `[JIT compiler]`,
 *   `[trace exit]`, `[unknown]`, `[libfoo.so+0x12]`
 * - `native`: everything else (C symbols, fast functions, the root)
 */
export type FrameKind = 'lua' | 'kernel' | 'vm' | 'native';

// A Lua location is a parenthesized `chunk:line` at the end of the name, either
// the whole name or after a space. The chunk may itself contain `:` and
// parentheses (`content_by_lua(nginx.conf:40)`), so match greedily.
const LUA_FRAME = /(?:^|\s)\(.*:\d+\)$/;
// stapxx writes a Lua frame as its chunk name (`@file` or `=name`) and line.
const STAPXX_LUA_FRAME = /^(?:T:)?[@=].*:\d+$/;

export function frameKind(name: string): FrameKind {
  if (name.endsWith('_[k]')) return 'kernel';
  if (name.length >= 2 && name.startsWith('[') && name.endsWith(']')) return 'vm';
  if (LUA_FRAME.test(name) || STAPXX_LUA_FRAME.test(name)) return 'lua';
  return 'native';
}
