// Which offset table describes a LuaJIT: the version it says it is, the
// tables that fit its memory (a fake GG_State laid out by each table), and
// the one-line refusals.
import { describe, expect, it } from 'vitest';
import { fittingLayouts, looksLikeDispatchTable, type MemoryRead, validateGlobalState } from '../../src/luajit/detect.js';
import { decideLayout, type LuajitIdentity, noFitMessage, planTables, versionKey } from '../../src/luajit/layout-choice.js';
import { type LuajitTable, loadOffsetTables, tableName } from '../../src/luajit/offset-tables.js';
import { fileNameRelease, findLuajitVersion } from '../../src/luajit/version-string.js';

const TABLES = loadOffsetTables();
const byName = (name: string): LuajitTable => {
  const t = TABLES.find((x) => tableName(x) === name);
  if (!t) throw new Error(`no table ${name}`);
  return t;
};
const DEBIAN_GC64 = byName('luajit2-2.1-20230119-gc64');
const DEBIAN_NOGC64 = byName('luajit2-2.1-20230119-nogc64');
const R20240314_GC64 = byName('luajit2-2.1-20240314-gc64');
const R20210510_GC64 = byName('luajit2-2.1-20210510-gc64');

function identity(over: Partial<LuajitIdentity> = {}): LuajitIdentity {
  return { path: '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2.1.0', version: 'LuaJIT 2.1.0-beta3', versionSymbol: null, openresty: true, ...over };
}

describe('the version a LuaJIT library says it is', () => {
  it('reads LUAJIT_VERSION as a whole C string, not the banner that starts with it', () => {
    const rodata = Buffer.from('\0%s\0LuaJIT 2.1.0-beta3 -- Copyright (C) 2005-2017 Mike Pall\0LuaJIT 2.1.1710398010\0jit\0', 'latin1');
    expect(findLuajitVersion(rodata)).toBe('LuaJIT 2.1.1710398010');
    expect(findLuajitVersion(Buffer.from('\0LuaJIT 2.1.0-beta3\0', 'latin1'))).toBe('LuaJIT 2.1.0-beta3');
    expect(findLuajitVersion(Buffer.from('\0Lua 5.1\0LuaJIT\0', 'latin1'))).toBeNull();
  });

  it('spells the string and the exported symbol alike', () => {
    expect(versionKey('LuaJIT 2.1.0-beta3')).toBe(versionKey('luaJIT_version_2_1_0_beta3'));
    expect(versionKey('LuaJIT 2.1.1710398010')).toBe('2_1_1710398010');
  });

  it("finds a rolling release's number in an installed library's file name", () => {
    expect(fileNameRelease('libluajit-5.1.so.2.1.1710398010')).toBe('2.1.1710398010');
    expect(fileNameRelease('libluajit-5.1.so.2.1.0')).toBeNull();
    expect(fileNameRelease('libluajit.so')).toBeNull();
  });
});

describe('tables to try, from what the library says', () => {
  it('takes the tables made from the release it names, in both modes', () => {
    const plan = planTables(identity({ version: 'LuaJIT 2.1.1710398010', versionSymbol: '2_1_1710398010' }), TABLES);
    expect('candidates' in plan && plan.candidates.map(tableName)).toEqual(['luajit2-2.1-20240314-gc64', 'luajit2-2.1-20240314-nogc64']);
  });

  it('puts Debian’s build first among the 2.1.0-beta3 releases of its family, unless the path names another', () => {
    const plan = planTables(identity(), TABLES);
    if (!('candidates' in plan)) throw new Error(plan.refusal);
    expect(tableName(plan.candidates[0])).toBe('luajit2-2.1-20230119-gc64');
    expect(plan.candidates.every((t) => t.package === 'luajit2' && t.luajitVersion === 'LuaJIT 2.1.0-beta3')).toBe(true);
    const built = planTables(identity({ path: '/var/cache/apisix-profile/build/luajit2-2.1-20220411-gc64/src/libluajit.so' }), TABLES);
    expect('candidates' in built && tableName(built.candidates[0])).toBe('luajit2-2.1-20220411-gc64');
  });

  it('refuses a release no table was made from, naming the library, what it says and how to add a table', () => {
    const id = identity({ path: '/usr/local/openresty/luajit/lib/libluajit-5.1.so.2.1.1736781742', version: 'LuaJIT 2.1.1736781742' });
    const plan = planTables(id, TABLES);
    expect('refusal' in plan && plan.refusal).toMatch(
      /^LuaJIT at \/usr\/local\/openresty\/luajit\/lib\/libluajit-5\.1\.so\.2\.1\.1736781742: says 'LuaJIT 2\.1\.1736781742', exports lua_setexdata, and no offset table was made from that release \(tables here are for .*'LuaJIT 2\.1\.1710398010'.*\): make one with `luajit-offsets\/generate\.sh --source <its source tarball> gc64\|nogc64` \(luajit-offsets\/README\.md\)$/,
    );
    // Without its table the release is unknown too.
    const without = TABLES.filter((t) => t.version !== '2.1-20240314');
    expect('refusal' in planTables(identity({ version: 'LuaJIT 2.1.1710398010' }), without)).toBe(true);
  });

  it('refuses when the version string and the exported version symbol disagree', () => {
    const plan = planTables(identity({ version: 'LuaJIT 2.1.0-beta3', versionSymbol: '2_1_1710398010' }), TABLES);
    expect('refusal' in plan && plan.refusal).toContain("says 'LuaJIT 2.1.0-beta3' but it exports luaJIT_version_2_1_1710398010");
  });

  it("refuses when the file name's release disagrees with the version string, and uses it when there is no string", () => {
    const renamed = identity({ path: '/opt/lj/libluajit-5.1.so.2.1.1700206165', version: 'LuaJIT 2.1.1710398010' });
    const plan = planTables(renamed, TABLES);
    expect('refusal' in plan && plan.refusal).toContain("its version string says 'LuaJIT 2.1.1710398010' but its file name says 2.1.1700206165");
    const stripped = planTables(identity({ path: '/opt/lj/libluajit-5.1.so.2.1.1710398010', version: null }), TABLES);
    expect('candidates' in stripped && stripped.candidates.map(tableName)).toEqual(['luajit2-2.1-20240314-gc64', 'luajit2-2.1-20240314-nogc64']);
  });

  it('falls back to memory alone, with a warning, for a library that carries no version', () => {
    const plan = planTables(identity({ version: null }), TABLES);
    if (!('candidates' in plan)) throw new Error(plan.refusal);
    expect(plan.candidates.every((t) => t.package === 'luajit2')).toBe(true);
    expect(plan.warning).toContain('carries no version string, exports lua_setexdata: the offset table is chosen from its memory layout alone');
  });
});

describe('choosing among the tables that fit', () => {
  it('names the one table that fits and what was read', () => {
    const d = decideLayout(identity({ version: 'LuaJIT 2.1.1710398010' }), [{ table: R20240314_GC64, g: 0x1000n }]);
    expect(d && 'note' in d && d.note).toBe(
      "LuaJIT at /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2.1.0: says 'LuaJIT 2.1.1710398010', exports lua_setexdata: luajit2-2.1-20240314-gc64 table",
    );
  });

  it('says so when several fit and read the same for everything the walkers use', () => {
    const alike = byName('luajit2-2.1-20230410-gc64');
    const d = decideLayout(identity(), [
      { table: DEBIAN_GC64, g: 0x1000n },
      { table: alike, g: 0x1000n },
    ]);
    expect(d && 'table' in d && d.table).toBe(DEBIAN_GC64);
    expect(d && 'note' in d && d.note).toContain('(luajit2-2.1-20230410-gc64 fit too and read the same for every offset, fast function and bytecode the walkers use)');
  });

  it('refuses when tables that fit differ, rather than guess', () => {
    const d = decideLayout(identity(), [
      { table: DEBIAN_GC64, g: 0x1000n },
      { table: R20210510_GC64, g: 0x1000n },
    ]);
    expect(d && 'refusal' in d && d.refusal).toMatch(/tables luajit2-2\.1-20230119-gc64, luajit2-2\.1-20210510-gc64 all fit its memory but differ in .*GG_dispatch.*generate\.sh --source/);
    expect(decideLayout(identity(), [])).toBeNull();
    expect(noFitMessage(identity(), [DEBIAN_GC64, DEBIAN_NOGC64])).toContain('none of the offset tables luajit2-2.1-20230119-gc64, luajit2-2.1-20230119-nogc64 matches its memory');
  });
});

/** A sparse fake address space. */
function fakeMemory(cells: Map<bigint, Buffer>): MemoryRead {
  return {
    read(addr, length) {
      for (const [base, buf] of cells) {
        if (addr >= base && addr + BigInt(length) <= base + BigInt(buf.length)) return buf.subarray(Number(addr - base), Number(addr - base) + length);
      }
      return null;
    },
  };
}

const CODE = { start: 0x400000n, end: 0x500000n };
const GG = 0x10000n;

/** A GG_State laid out by `layout`: main thread, cur_L, jit_State, hot counters, dispatch table. */
function processMemory(layout: LuajitTable, over: { vmstate?: number; sizetrace?: number; dispatchEntry?: (i: number) => bigint } = {}): { mem: MemoryRead; g: bigint; L: bigint } {
  const o = layout.offsets;
  const gc64 = o.gc64 === 1;
  const nbc = layout.bytecodes.length;
  const gg = Buffer.alloc(o.GG_dispatch + (nbc + 64) * 8);
  const g = GG + BigInt(o.GG_g);
  const L = 0x90000n;
  const ref = (buf: Buffer, at: number, v: bigint) => (gc64 ? buf.writeBigUInt64LE(v, at) : buf.writeUInt32LE(Number(v), at));
  ref(gg, o.GG_g + o.G_mainthref, L);
  ref(gg, o.GG_g + o.G_cur_L, L);
  gg.writeInt32LE(over.vmstate ?? -1, o.GG_g + o.G_vmstate);
  gg.writeUInt32LE(over.sizetrace ?? 0, o.GG_J + o.J_sizetrace);
  // Hot counters just before the dispatch table: small numbers.
  for (let i = 0; i < 64; i++) gg.writeUInt16LE(111, o.GG_dispatch - 128 + i * 2);
  for (let i = 0; i < nbc + 64; i++) gg.writeBigUInt64LE(over.dispatchEntry?.(i) ?? CODE.start + 0x100n + BigInt(i * 0x80), o.GG_dispatch + i * 8);
  const l = Buffer.alloc(o.L_size);
  ref(l, o.L_glref, g);
  return { mem: fakeMemory(new Map([[GG, gg], [L, l]])), g, L };
}

describe('validating a table against live memory', () => {
  it('accepts the layout the process really has', () => {
    const p = processMemory(DEBIAN_GC64);
    expect(validateGlobalState(p.mem, DEBIAN_GC64, p.g, CODE)).toBe(true);
    expect(fittingLayouts(p.mem, [DEBIAN_NOGC64, DEBIAN_GC64], CODE, { via: 'uprobe', L: p.L })).toEqual([{ table: DEBIAN_GC64, g: p.g }]);
    const dispatch = GG + BigInt(DEBIAN_GC64.offsets.GG_dispatch);
    expect(fittingLayouts(p.mem, [DEBIAN_NOGC64, DEBIAN_GC64], CODE, { via: 'DISPATCH register', dispatch })).toEqual([{ table: DEBIAN_GC64, g: p.g }]);
    expect(fittingLayouts(p.mem, [DEBIAN_GC64], CODE, { via: 'stack', words: [3n, 0x1234n, p.L] })).toEqual([{ table: DEBIAN_GC64, g: p.g }]);
  });

  it("tells releases apart whose lua_State and global_State agree but whose GG_State's dispatch table moved by 8 bytes", () => {
    expect(DEBIAN_GC64.offsets.GG_dispatch - R20210510_GC64.offsets.GG_dispatch).toBe(8);
    const newer = processMemory(DEBIAN_GC64);
    expect(fittingLayouts(newer.mem, [R20210510_GC64, DEBIAN_GC64], CODE, { via: 'uprobe', L: newer.L }).map((f) => tableName(f.table))).toEqual(['luajit2-2.1-20230119-gc64']);
    const older = processMemory(R20210510_GC64);
    expect(fittingLayouts(older.mem, [DEBIAN_GC64, R20210510_GC64], CODE, { via: 'uprobe', L: older.L }).map((f) => tableName(f.table))).toEqual(['luajit2-2.1-20210510-gc64']);
    // The round trips alone could not: both pass them.
    expect(validateGlobalState(older.mem, DEBIAN_GC64, older.g)).toBe(true);
  });

  it('rejects dispatch entries outside the code, an impossible vmstate, and a trace number beyond the trace array', () => {
    const p = processMemory(DEBIAN_GC64, { dispatchEntry: (i) => (i === 5 ? 0x1234n : CODE.start + BigInt(i)) });
    expect(validateGlobalState(p.mem, DEBIAN_GC64, p.g, CODE)).toBe(false);
    const vm = processMemory(DEBIAN_GC64, { vmstate: -9 });
    expect(validateGlobalState(vm.mem, DEBIAN_GC64, vm.g, CODE)).toBe(false);
    const trace = processMemory(DEBIAN_GC64, { vmstate: 3, sizetrace: 0 });
    expect(validateGlobalState(trace.mem, DEBIAN_GC64, trace.g, CODE)).toBe(false);
    const wrongMode = processMemory(DEBIAN_GC64);
    expect(validateGlobalState(wrongMode.mem, DEBIAN_NOGC64, wrongMode.g, CODE)).toBe(false);
  });

  it('recognises the VM running (r14 at a table of code pointers) whatever the layout', () => {
    const p = processMemory(R20210510_GC64);
    const dispatch = GG + BigInt(R20210510_GC64.offsets.GG_dispatch);
    expect(looksLikeDispatchTable(p.mem, dispatch, CODE)).toBe(true);
    expect(looksLikeDispatchTable(p.mem, dispatch - 8n, CODE)).toBe(false);
    expect(looksLikeDispatchTable(p.mem, 0n, CODE)).toBe(false);
  });
});
