// Fast-function names from LuaJIT's generated src/lj_ffdef.h.
//
// lj_ffdef.h holds one FFDEF(name) line per built-in library function, in
// fast-function id order: the first line is id 2 (ids 0 and 1 are "Lua
// function" and "C function"). A name is the library module's name joined to
// the function name with "_" (string_format, io_method_write,
// ffi_meta___call); base-library functions have no module prefix (assert,
// ipairs_aux). We turn them into the Lua-style names LuaJIT itself uses in
// jit/vmdef.lua: string.format, io.method.write, ffi.meta.__call, assert,
// ipairs_aux, coroutine.wrap_aux.
//
// Rule: if the name starts with a known module followed by "_", the module's
// own underscores become dots (io_method -> io.method), the separating "_"
// becomes a dot, and the rest of the name is kept as is (longest module
// match wins, so io_method_lines -> io.method.lines, not io.method_lines).
// Anything else (the base library) is kept unchanged.
//
// Usable as a module (the vitest unit test imports it) and as a script:
//   node luajit-offsets/ffnames.mjs path/to/lj_ffdef.h   -> JSON array on stdout

import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Library modules of LuaJIT 2.1 and OpenResty's branch (LJLIB_MODULE_* in
 * src/lib_*.c, plus OpenResty's thread.exdata functions). */
export const LIBRARY_MODULES = Object.freeze([
  'coroutine', 'thread', 'math', 'bit', 'string', 'table', 'io', 'io_method',
  'os', 'package', 'debug', 'jit', 'jit_util', 'jit_opt', 'jit_profile',
  'ffi', 'ffi_meta', 'ffi_clib', 'ffi_callback', 'buffer', 'buffer_method',
]);

/** The Lua-style name of one FFDEF identifier. */
export function ffdefName(ident, modules = LIBRARY_MODULES) {
  let best = '';
  for (const m of modules) {
    if (m.length > best.length && ident.length > m.length + 1 &&
        ident.startsWith(m + '_')) {
      best = m;
    }
  }
  if (best === '') return ident;
  return best.replace(/_/g, '.') + '.' + ident.slice(best.length + 1);
}

/**
 * Parse lj_ffdef.h text into Lua-style names, in order: element i has
 * fast-function id i + 2.
 * @param {string} headerText
 * @param {readonly string[]} [modules]
 * @returns {string[]}
 */
export function ffdefToNames(headerText, modules = LIBRARY_MODULES) {
  const names = [];
  const re = /^\s*FFDEF\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)/gm;
  for (const m of headerText.matchAll(re)) names.push(ffdefName(m[1], modules));
  return names;
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(fileURLToPath(import.meta.url)) === realpathSync(process.argv[1]);
  } catch {
    return false;
  }
}

if (isMain()) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: node ffnames.mjs path/to/lj_ffdef.h\n');
    process.exit(2);
  }
  const names = ffdefToNames(readFileSync(path, 'utf8'));
  if (names.length === 0) {
    process.stderr.write(`ffnames.mjs: no FFDEF lines in ${path}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(names) + '\n');
}
