// Which offset table describes a process's LuaJIT, decided from evidence and
// said out loud: the version the library says it is (its LUAJIT_VERSION
// string, and the luaJIT_version_* symbol it exports), its family (OpenResty's
// luajit2 exports lua_setexdata), and which tables fit its live memory. A
// table is never taken on layout alone when the library names a release no
// table was made from: two releases can share every offset the first checks
// read and still differ, so a guess gives a flame graph that looks right and
// is not. Pure: the memory checks are done by the caller (detect.ts).
import { type LuajitTable, tableName } from './offset-tables.js';
import { fileNameRelease } from './version-string.js';

export interface LuajitIdentity {
  /** Path as the process maps it. */
  path: string;
  /** LUAJIT_VERSION from its .rodata ("LuaJIT 2.1.1710398010"); null when not found. */
  version: string | null;
  /** The release its exported luaJIT_version_* symbol names ("2_1_1710398010"); null without one. */
  versionSymbol: string | null;
  /** Exports lua_setexdata: OpenResty's luajit2. */
  openresty: boolean;
}

export interface Fit {
  table: LuajitTable;
  /** global_State under that table. */
  g: bigint;
}

export const HOW_TO_ADD_A_TABLE = 'make one with `luajit-offsets/generate.sh --source <its source tarball> gc64|nogc64` (luajit-offsets/README.md)';

/** One spelling for both sources: "LuaJIT 2.1.0-beta3" and "luaJIT_version_2_1_0_beta3" give "2_1_0_beta3". */
export function versionKey(text: string): string {
  return text
    .replace(/^luaJIT_version_/, '')
    .replace(/^LuaJIT /, '')
    .replace(/[^0-9A-Za-z]+/g, '_');
}

/** "LuaJIT at /path: says 'LuaJIT 2.1.1710398010', exports lua_setexdata" */
export function describeIdentity(id: LuajitIdentity): string {
  const says = id.version
    ? `says '${id.version}'`
    : id.versionSymbol
      ? `exports luaJIT_version_${id.versionSymbol} (no version string found)`
      : 'carries no version string';
  const family = id.openresty ? 'exports lua_setexdata' : 'does not export lua_setexdata (upstream LuaJIT)';
  return `LuaJIT at ${id.path}: ${says}, ${family}`;
}

/**
 * The release the library names, when its pieces of evidence agree: the
 * version string, the exported symbol, and the release number in an
 * installed library's file name.
 */
function releaseKey(id: LuajitIdentity): { key: string | null } | { conflict: string } {
  const fileRelease = fileNameRelease(id.path.slice(id.path.lastIndexOf('/') + 1));
  const evidence = [
    id.version ? { key: versionKey(id.version), what: `its version string says '${id.version}'` } : null,
    id.versionSymbol ? { key: id.versionSymbol, what: `it exports luaJIT_version_${id.versionSymbol}` } : null,
    fileRelease ? { key: versionKey(fileRelease), what: `its file name says ${fileRelease}` } : null,
  ].filter((e) => e !== null);
  const other = evidence.find((e) => e.key !== evidence[0].key);
  if (other) return { conflict: `${evidence[0].what} but ${other.what}` };
  return { key: evidence[0]?.key ?? null };
}

export type TablePlan = { candidates: LuajitTable[]; evidence: string; warning?: string } | { refusal: string };

/**
 * Before any memory is read: the tables made from the release the library
 * names (both modes; memory decides), or a refusal when it names one no
 * table was made from.
 */
export function planTables(id: LuajitIdentity, tables: readonly LuajitTable[]): TablePlan {
  const evidence = describeIdentity(id);
  const family = tables.filter((t) => (t.package === 'luajit2') === id.openresty);
  const release = releaseKey(id);
  if ('conflict' in release) return { refusal: `${evidence}: ${release.conflict}, so no table can be trusted to describe it` };
  if (release.key === null) {
    // A stripped or renamed build: only its memory can tell.
    return {
      candidates: byPreference(family.length > 0 ? family : [...tables], id),
      evidence,
      warning: `${evidence}: the offset table is chosen from its memory layout alone`,
    };
  }
  const named = family.filter((t) => t.luajitVersion !== undefined && versionKey(t.luajitVersion) === release.key);
  if (named.length === 0) {
    const known = [...new Set(family.map((t) => t.luajitVersion).filter((v) => v !== undefined))].map((v) => `'${v}'`);
    return {
      refusal: `${evidence}, and no offset table was made from that release (tables here are for ${known.join(', ') || 'no release of that family'}): ${HOW_TO_ADD_A_TABLE}`,
    };
  }
  return { candidates: byPreference(named, id), evidence };
}

/**
 * The order tables are tried in, which among tables that read alike is the
 * one named: one whose release is in the library's path (a build directory
 * or a versioned install) first, then a distribution's build (Debian's
 * luajit2 is what a stock nginx with ngx_lua maps), GC64 before non-GC64
 * (the x86-64 default; memory decides anyway), then the newest release.
 */
function byPreference(tables: readonly LuajitTable[], id: LuajitIdentity): LuajitTable[] {
  const score = (t: LuajitTable) => (id.path.includes(t.version) ? 8 : 0) + (t.source.startsWith('Debian ') ? 4 : 0) + (t.mode === 'gc64' ? 2 : 0);
  return [...tables].sort((a, b) => score(b) - score(a) || b.version.localeCompare(a.version));
}

/** Everything the walkers read from a table: two tables equal here give the same stacks. */
function walkerData(t: LuajitTable): string {
  return JSON.stringify([t.mode, t.offsets, t.fastFunctions, t.bytecodes]);
}

/** Names of the parts two tables differ in, for the refusal. */
export function tableDifferences(a: LuajitTable, b: LuajitTable): string[] {
  const out: string[] = [];
  if (a.mode !== b.mode) out.push('mode');
  const keys = new Set([...Object.keys(a.offsets), ...Object.keys(b.offsets)]);
  for (const k of keys) if (a.offsets[k] !== b.offsets[k]) out.push(k);
  if (JSON.stringify(a.fastFunctions) !== JSON.stringify(b.fastFunctions)) out.push('fast functions');
  if (JSON.stringify(a.bytecodes) !== JSON.stringify(b.bytecodes)) out.push('bytecodes');
  return out;
}

export type LayoutDecision = { table: LuajitTable; g: bigint; note: string } | { refusal: string };

/**
 * After the memory checks: the table to use among those that fit, in the
 * plan's order. Several may fit when releases say the same version (luajit2
 * 2020 to 2023 all say 2.1.0-beta3): if they read the same for everything
 * the walkers use, any gives the same profile, and the note says so; if
 * they differ, nothing here tells which release runs, so refuse.
 */
export function decideLayout(id: LuajitIdentity, fits: readonly Fit[]): LayoutDecision | null {
  if (fits.length === 0) return null;
  const evidence = describeIdentity(id);
  const [first] = fits;
  const others = fits.slice(1).filter((f) => f.table !== first.table);
  const differing = others.filter((f) => walkerData(f.table) !== walkerData(first.table));
  if (differing.length > 0) {
    const diff = tableDifferences(first.table, differing[0].table);
    return {
      refusal: `${evidence}; tables ${[first, ...differing].map((f) => tableName(f.table)).join(', ')} all fit its memory but differ in ${diff.slice(0, 6).join(', ')}${diff.length > 6 ? ', ...' : ''}, and nothing tells which release it is: ${HOW_TO_ADD_A_TABLE}`,
    };
  }
  const alike = others.length > 0 ? ` (${others.map((f) => tableName(f.table)).join(', ')} fit too and read the same for every offset, fast function and bytecode the walkers use)` : '';
  return { table: first.table, g: first.g, note: `${evidence}: ${tableName(first.table)} table${alike}` };
}

/** Why no table fits although tables for its release exist (or none says which release). */
export function noFitMessage(id: LuajitIdentity, tried: readonly LuajitTable[]): string {
  return `${describeIdentity(id)}, and none of the offset tables ${tried.map(tableName).join(', ')} matches its memory (another build option such as GC64, or a patched LuaJIT): ${HOW_TO_ADD_A_TABLE}`;
}
