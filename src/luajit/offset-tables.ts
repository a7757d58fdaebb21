// Loads the committed LuaJIT offset tables (luajit-offsets/tables/*.json).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface LuajitTable {
  package: string;
  version: string;
  mode: 'gc64' | 'nogc64';
  source: string;
  /** The LUAJIT_VERSION string the source's library carries ("LuaJIT 2.1.1710398010"). */
  luajitVersion: string;
  offsets: Record<string, number>;
  /** fastFunctions[i] is the Lua name of fast function id i + 2. */
  fastFunctions: string[];
  /** By opcode: [name, operand-A mode, metamethod] from the build's lj_bc.h. */
  bytecodes: [string, string, string][];
}

/**
 * The committed tables, or the directory APISIX_PROFILE_LUAJIT_TABLES names
 * instead (a table made for a build not in the package; the tests' way to
 * take a release's table away).
 */
export function tablesDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.APISIX_PROFILE_LUAJIT_TABLES || join(packageRoot(), 'luajit-offsets', 'tables');
}

export function loadOffsetTables(dir = tablesDir()): LuajitTable[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as LuajitTable);
}

export function tableName(t: LuajitTable): string {
  return `${t.package}-${t.version}-${t.mode}`;
}

/** Lua name of a fast function ("string.format"), or builtin#N if unknown. */
export function fastFunctionName(t: LuajitTable, ffid: number): string {
  return t.fastFunctions[ffid - 2] ?? `builtin#${ffid}`;
}
