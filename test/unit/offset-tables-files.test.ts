// The committed offset tables (luajit-offsets/tables/*.json) are complete and
// well-formed: every release and mode we support has one, every schema key is
// there with an integer, and each says which release it was generated from.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';

const tablesDir = join(dirname(fileURLToPath(import.meta.url)), '../../luajit-offsets/tables');

const OFFSET_KEYS = [
  'gc64', 'fr2',
  'L_size', 'L_glref', 'L_base', 'L_top', 'L_maxstack', 'L_stack', 'L_cframe', 'L_stacksize', 'L_exdata',
  'G_vmstate', 'G_mainthref', 'G_cur_L', 'G_jit_base',
  'GG_g', 'GG_J', 'GG_dispatch',
  'fn_ffid', 'fn_pc', 'fn_c_f',
  'pt_size', 'pt_chunkname', 'pt_firstline', 'pt_numline', 'pt_lineinfo', 'pt_sizebc',
  'pt_k', 'pt_sizekgc', 'pt_sizeuv', 'pt_uvinfo', 'pt_varinfo',
  'str_size', 'str_len',
  'J_trace', 'J_sizetrace', 'trace_nsnap', 'trace_snap', 'trace_snapmap', 'trace_mcode',
  'trace_szmcode', 'trace_startpt', 'trace_startpc', 'trace_spadjust',
  'snap_size', 'snap_mcofs', 'snap_mapofs', 'snap_nent',
];
const TOP_KEYS = ['package', 'version', 'mode', 'source', 'luajitVersion', 'generator', 'offsets', 'fastFunctions', 'bytecodes'];

/** Releases built from tarballs (../shared/luajit-src) and Debian's two source packages. */
const RELEASES = [
  'luajit2-2.1-20201027', 'luajit2-2.1-20210510', 'luajit2-2.1-20220411', 'luajit2-2.1-20230410',
  'luajit2-2.1-20231117', 'luajit2-2.1-20240314', 'luajit-2.1-20260819',
  'luajit2-2.1-20230119', 'luajit-2.1.0~beta3+git20220320+dfsg',
];

const files = readdirSync(tablesDir).filter((f) => f.endsWith('.json')).sort();
const load = (file: string) => JSON.parse(readFileSync(join(tablesDir, file), 'utf8'));

it('there is a table for every supported release in both modes, and no other', () => {
  const want = RELEASES.flatMap((r) => [`${r}-gc64.json`, `${r}-nogc64.json`]).sort();
  expect(files).toEqual(want);
});

for (const file of files) {
  describe(file, () => {
    const table = load(file);

    it('has exactly the schema keys, named after its release', () => {
      expect(Object.keys(table)).toEqual(TOP_KEYS);
      expect(Object.keys(table.offsets)).toEqual(OFFSET_KEYS);
      expect(`${table.package}-${table.version}-${table.mode}.json`).toBe(file);
      expect(['gc64', 'nogc64']).toContain(table.mode);
      expect(table.generator).toBe('luajit-offsets/generate.sh');
    });

    it('says where it came from: Debian .dsc, or repository, ref, commit and tarball sha256', () => {
      const debian = /^Debian source package \S+ \S+ \(dsc sha256 [0-9a-f]{64}\)$/;
      const tarball = /^\S+\/\S+ .+, commit [0-9a-f]{40} \(\S+\.tar\.gz sha256 [0-9a-f]{64}\)$/;
      expect(debian.test(table.source) || tarball.test(table.source), table.source).toBe(true);
      if (tarball.test(table.source)) expect(table.source).toContain(`(${table.package}-${table.version}.tar.gz sha256 `);
    });

    it('records the version string of the built library; a rolling release number is its commit date', () => {
      expect(table.luajitVersion).toMatch(/^LuaJIT 2\.1\.(0-beta3|\d{10})$/);
      const relver = /^LuaJIT 2\.1\.(\d{10})$/.exec(table.luajitVersion);
      const dated = /^2\.1-(\d{4})(\d\d)(\d\d)$/.exec(table.version);
      if (relver && dated) {
        // .relver is the commit time (git archive export-subst %ct): the tag's date, give or take the time zone.
        const day = Date.UTC(+dated[1], +dated[2] - 1, +dated[3]) / 1000;
        expect(Math.abs(+relver[1] - day), `${relver[1]} vs ${table.version}`).toBeLessThan(2 * 86_400);
      }
    });

    it('lists every bytecode with its operand-A mode and metamethod', () => {
      const names = table.bytecodes.map((b: string[]) => b[0]);
      expect(names.slice(0, 2)).toEqual(['ISLT', 'ISGE']);
      for (const op of ['MOV', 'GGET', 'TGETS', 'UGET', 'CALL', 'CALLM', 'ITERC', 'KNIL', 'FUNCF', 'FUNCC']) expect(names).toContain(op);
      const byName = new Map(table.bytecodes.map((b: string[]) => [b[0], b]));
      expect(byName.get('CALL')).toEqual(['CALL', 'base', 'call']);
      expect(byName.get('TGETS')).toEqual(['TGETS', 'dst', 'index']);
      expect(byName.get('MOV')).toEqual(['MOV', 'dst', '___']);
    });

    it('has integer offsets consistent with the mode', () => {
      for (const key of OFFSET_KEYS) {
        const v = table.offsets[key];
        expect(Number.isInteger(v), `${key} = ${v}`).toBe(true);
        expect(v, key).toBeGreaterThanOrEqual(-1);
      }
      const gc64 = table.mode === 'gc64' ? 1 : 0;
      expect(table.offsets.gc64).toBe(gc64);
      expect(table.offsets.fr2).toBe(gc64);
      // GG_State starts with the main lua_State, then global_State.
      expect(table.offsets.GG_g).toBe(table.offsets.L_size);
      expect(table.offsets.GG_dispatch).toBeGreaterThan(table.offsets.GG_J);
      // The BPF walk reads global_State from vmstate to cur_L/jit_base in one 256-byte block.
      expect(Math.max(table.offsets.G_cur_L, table.offsets.G_jit_base) + 8 - table.offsets.G_vmstate).toBeLessThanOrEqual(256);
    });

    it('lists fast functions with the expected names and ids', () => {
      const ff: string[] = table.fastFunctions;
      expect(ff[0]).toBe('assert'); // ffid 2
      for (const name of ['string.format', 'pcall', 'table.concat', 'coroutine.wrap_aux']) {
        expect(ff).toContain(name);
      }
      expect(new Set(ff).size).toBe(ff.length);
      // ffid = index + 2; pcall follows error in lib_base.c on every 2.1 tree.
      expect(ff.indexOf('pcall') + 2).toBe(ff.indexOf('error') + 3);
    });
  });
}

it('the two modes of a release share fast functions, bytecodes, source and version string', () => {
  for (const release of RELEASES) {
    const gc64 = load(`${release}-gc64.json`);
    const nogc64 = load(`${release}-nogc64.json`);
    expect(nogc64.fastFunctions, release).toEqual(gc64.fastFunctions);
    expect(nogc64.bytecodes, release).toEqual(gc64.bytecodes);
    expect(nogc64.source, release).toBe(gc64.source);
    expect(nogc64.luajitVersion, release).toBe(gc64.luajitVersion);
  }
});

it('luajit2 2.1-20230119 matches offsetof values checked by hand against its headers', () => {
  const gc64 = load('luajit2-2.1-20230119-gc64.json');
  expect(gc64.offsets).toMatchObject({
    L_size: 112, L_glref: 16, L_base: 32, L_stack: 56, L_cframe: 80,
    G_vmstate: 184, G_mainthref: 192, G_cur_L: 368, G_jit_base: 376,
    GG_g: 112, GG_J: 848, GG_dispatch: 4120,
    fn_ffid: 10, fn_pc: 32,
    pt_size: 104, pt_chunkname: 64, pt_firstline: 72, pt_numline: 76, pt_lineinfo: 80,
    str_size: 24,
  });
  expect(gc64.fastFunctions.indexOf('pcall') + 2).toBe(20);

  const nogc64 = load('luajit2-2.1-20230119-nogc64.json');
  expect(nogc64.offsets).toMatchObject({
    L_size: 80, L_glref: 8, L_base: 16, L_stack: 36, L_cframe: 48,
    G_vmstate: 136, G_mainthref: 140, G_cur_L: 288, G_jit_base: 292,
    GG_g: 80, GG_J: 576, GG_dispatch: 3296,
    fn_ffid: 6, fn_pc: 16,
    pt_size: 64, pt_chunkname: 40, pt_firstline: 44, pt_numline: 48, pt_lineinfo: 52,
    str_size: 20,
  });
});

it("L_exdata is set in OpenResty's branch (lua_setexdata) and -1 in upstream LuaJIT", () => {
  for (const file of files) {
    const t = load(file);
    const exdata = t.offsets.L_exdata as number;
    if (t.package === 'luajit2') {
      // Right after cframe's MSize stacksize: 8-aligned, inside the lua_State.
      expect(exdata, file).toBeGreaterThan(t.offsets.L_stacksize);
      expect(exdata + 8, file).toBeLessThanOrEqual(t.offsets.L_size);
    } else {
      expect(exdata, file).toBe(-1);
    }
  }
});
