// Every LuaJIT release we have a table for, built GC64 and non-GC64
// (scripts/build-luajit-variants.sh): a standalone `luajit` of that build and
// an nginx worker whose ngx_lua runs on its libluajit-5.1.so.2 (OpenResty's
// luajit2 only: Debian's ngx_lua refuses upstream LuaJIT). Each must be
// recognised as itself (the table made from its release, chosen from the
// version it says it is), and profiled right: every function within 3 pp of
// its own measurement with the JIT on and off, current lines inside traces,
// VM states, names and FFI frames. And a release whose table is taken away
// must be refused with one line (exit 10), never profiled with another's.
//
// Kept short for CI (about 30 s a build): 3-4 s profiles; one process per
// JIT setting doing the accuracy, line and VM-state checks at once; the
// standalone processes profiled two at a time (a core each).
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { frameKind } from '../../src/report/frame.js';
import type { Stack } from '../../src/report/stack.js';
import {
  appDir,
  definitionLine,
  type Fixture,
  luajitBuild,
  luajitReleases,
  repoRoot,
  requireRoot,
  runCli,
  sleep,
  startFixture,
  startLoad,
  startStandalone,
} from '../support/fixture.js';

const FUNCTIONS = ['alpha', 'beta', 'gamma'] as const;
const TOLERANCE_PP = 3;
/**
 * Profile lengths, at 2999 Hz: many samples in a short run keep the
 * sampling error of a share well under the tolerance (0.5 pp for a 35%
 * share in 9,000 samples). Compiled code spreads its samples over more,
 * shorter calls, so the JIT on gets longer.
 */
const SECONDS = { 'jit-on': '4', 'jit-off': '3' } as const;

/** Every build made from a release tarball (Debian's own builds have their tests in accuracy and shapes). */
const RELEASES = luajitReleases().filter((r) => !r.debian);

/**
 * Releases whose libluajit Debian's ngx_lua (0.10.23) loads: OpenResty's
 * luajit2 only (it needs lua_setexdata and friends, which upstream LuaJIT
 * does not export).
 */
const runsUnderNginx = (r: (typeof RELEASES)[number]) => r.package === 'luajit2';

interface Truth {
  total: number;
  alpha: number;
  beta: number;
  gamma: number;
  gc64: boolean;
  jit: boolean;
  version: string;
}

/** Lines [first, last] of `function _M.<name>` in cost.lua, to its closing `end`. */
function bodyLines(name: string): { def: number; first: number; last: number } {
  const lines = readFileSync(join(appDir, 'cost.lua'), 'utf8').split('\n');
  const def = definitionLine(name);
  const end = lines.findIndex((l, i) => i >= def && l === 'end');
  return { def, first: def, last: end + 1 };
}
const BODIES = Object.fromEntries(FUNCTIONS.map((f) => [f, bodyLines(f)])) as Record<(typeof FUNCTIONS)[number], ReturnType<typeof bodyLines>>;

/** The cost.lua line a frame names, or null. */
function costLine(frame: string): number | null {
  const m = /cost\.lua:(\d+)\)$/.exec(frame);
  return m ? Number(m[1]) : null;
}
const inBody = (fn: (typeof FUNCTIONS)[number], line: number | null) => line !== null && line >= BODIES[fn].first && line <= BODIES[fn].last;

const total = (stacks: Stack[]) => stacks.reduce((n, s) => n + s.count, 0);

interface Profile {
  code: number | null;
  stderr: string;
  stacks: Stack[];
  json: { vmStates?: Record<string, number> } | null;
}

/** One profile through the CLI with folded and JSON outputs; onLog sees stderr lines as they come. */
async function profile(args: string[], onLog?: (line: string) => void | Promise<void>, env?: Record<string, string>): Promise<Profile> {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-releases-'));
  try {
    const run = await runCliEnv([...args, '--output', join(dir, 'out.svg'), '--folded', join(dir, 'out.folded'), '--json', join(dir, 'out.json')], onLog, env);
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f), 'utf8');
      } catch {
        return null;
      }
    };
    const json = read('out.json');
    return { ...run, stacks: parseFolded(read('out.folded') ?? ''), json: json ? JSON.parse(json) : null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** runCli with extra environment (the tables-dir seam); without it, runCli itself. */
async function runCliEnv(args: string[], onLog?: (line: string) => void | Promise<void>, env?: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  if (!env) return { ...(await runCli(args, onLog)), stdout: '' };
  const child = spawn(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8');
  child.stdout!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr += c));
  child.stdout!.on('data', (c: string) => (stdout += c));
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  return { code, stderr, stdout };
}

interface Target {
  pid: number;
  reset(): Promise<unknown>;
  truth(): Promise<string>;
}

/** Profiles a running cost workload; the truth is read over exactly the sampling window. */
async function profileWorkload(target: Target, jit: 'jit-on' | 'jit-off', extra: string[]): Promise<{ run: Profile; truth: Truth }> {
  let truth: Truth | null = null;
  let resetDone: Promise<unknown> | null = null;
  const run = await profile(['--pid', String(target.pid), '--duration', SECONDS[jit], '--frequency', '2999', ...extra], async (line) => {
    if (line.includes('"msg":"sampling"')) resetDone = target.reset();
    if (line.includes('"msg":"sampling stopped"')) {
      await resetDone;
      truth = JSON.parse(await target.truth()) as Truth;
    }
  });
  expect(run.code, run.stderr).toBe(0);
  expect(truth, 'the profiler never logged its phases').not.toBeNull();
  return { run, truth: truth! };
}

/** Each function's share (stacks holding a frame inside its body) against its own measurement. */
function expectShares(label: string, stacks: Stack[], truth: Truth): void {
  const all = total(stacks);
  const report: Record<string, { profile: number; truth: number }> = {};
  for (const fn of FUNCTIONS) {
    const hit = stacks.filter((s) => s.frames.some((f) => frameKind(f) === 'lua' && inBody(fn, costLine(f))));
    report[fn] = { profile: (100 * total(hit)) / all, truth: (100 * truth[fn]) / truth.total };
  }
  const worst = Math.max(...FUNCTIONS.map((fn) => Math.abs(report[fn].profile - report[fn].truth)));
  console.log(`share error ${label}: max ${worst.toFixed(2)} pp`, JSON.stringify(report));
  for (const fn of FUNCTIONS) {
    expect(report[fn].truth, `${label}: ${fn} did not run`).toBeGreaterThan(5);
    expect(Math.abs(report[fn].profile - report[fn].truth), `${label}: ${fn}: ${JSON.stringify(report)}`).toBeLessThan(TOLERANCE_PP);
  }
}

/** The table chosen, and the version string read, as the run logged them. */
function expectChosen(stderr: string, table: string, version: string): void {
  const found = stderr.split('\n').find((l) => l.includes(' found (LuaJIT at '));
  expect(found, stderr).toBeDefined();
  expect(found).toContain(`LuaJIT ${table} found (`);
  expect(found).toContain(`says '${version}'`);
}

beforeAll(() => requireRoot());

for (const release of RELEASES) {
  const table = `${release.name}-${release.mode}`;
  describe(table, () => {
    const build = () => luajitBuild(release.name, release.mode);

    it(`standalone: its own table; every function within ${TOLERANCE_PP} pp, JIT on and off; current lines inside traces; VM states`, async () => {
      // One process per JIT setting, profiled side by side (a core each).
      const processes = await Promise.all((['jit-on', 'jit-off'] as const).map(async (jit) => ({ jit, s: await startStandalone(build().luajit, jit) })));
      try {
        const results = await Promise.all(processes.map(({ jit, s }) => profileWorkload(s, jit, ['--lines', 'current'])));
        processes.forEach(({ jit }, i) => {
          const { run, truth } = results[i];
          expectChosen(run.stderr, table, release.luajitVersion);
          expect(truth.version).toBe(release.luajitVersion);
          expect(truth.gc64).toBe(release.mode === 'gc64');
          expect(truth.jit).toBe(jit === 'jit-on');
          expectShares(`${table} standalone ${jit}`, run.stacks, truth);
          // Native walks get through the VM and the traces down to main.
          const rooted = run.stacks.filter((st) => st.frames[0] === '_start');
          expect(total(rooted) / total(run.stacks), JSON.stringify(run.stacks.filter((st) => st.frames[0] !== '_start').slice(0, 3))).toBeGreaterThan(0.9);
          const vm = run.json?.vmStates;
          expect(vm, JSON.stringify(run.json)).toBeDefined();
          const all = Object.values(vm!).reduce((a, b) => a + b, 0);
          if (jit === 'jit-on') {
            // The loops run as traces: most samples are in compiled code, and
            // their leaf line is inside the loop, not the function's first line.
            expect(vm!.compiled / all, JSON.stringify(vm)).toBeGreaterThan(0.6);
            const leaves = run.stacks.filter((st) => FUNCTIONS.some((fn) => inBody(fn, costLine(st.frames.at(-1)!))));
            const onDef = leaves.filter((st) => FUNCTIONS.some((fn) => costLine(st.frames.at(-1)!) === BODIES[fn].def));
            expect(total(leaves) / total(run.stacks)).toBeGreaterThan(0.8);
            expect(total(onDef) / total(leaves), JSON.stringify(onDef.slice(0, 3))).toBeLessThan(0.05);
          } else {
            expect(vm!.compiled, JSON.stringify(vm)).toBe(0);
            expect(vm!.interpreted / all, JSON.stringify(vm)).toBeGreaterThan(0.6);
          }
        });
      } finally {
        await Promise.all(processes.map(({ s }) => s.stop()));
      }
    });

    it('standalone: callees named the way their callers call them; a C function called through the FFI right above its Lua caller', async () => {
      // Two processes profiled at once (two profilers, one each): half the wall time.
      const children = (['names', 'ffi'] as const).map((mode) => ({ mode, child: spawn(build().luajit, [join(appDir, 'shapes.lua'), mode, 'jit-on'], { stdio: 'ignore' }) }));
      try {
        await sleep(300);
        const runs = await Promise.all(children.map(({ child }) => profile(['--pid', String(child.pid), '--duration', '2', '--frequency', '499'])));
        children.forEach(({ mode }, i) => {
          const run = runs[i];
          expect(run.code, run.stderr).toBe(0);
          expectChosen(run.stderr, table, release.luajitVersion);
          if (mode === 'names') {
            const luaNames = new Set(run.stacks.flatMap((s) => s.frames).filter((f) => frameKind(f) === 'lua').map((f) => f.slice(0, f.lastIndexOf(' ('))));
            for (const name of ['global_fn', 'local_fn', 'M.field_fn', 'M:method_fn', 'calls_upvalue', 'up', 'spin']) expect(luaNames, [...luaNames].join(', ')).toContain(name);
          } else {
            const viaC = run.stacks.filter((s) => s.frames.some((f) => f.includes('getpid')));
            const withLua = viaC.filter((s) => s.frames.some((f) => frameKind(f) === 'lua'));
            expect(total(viaC) / total(run.stacks)).toBeGreaterThan(0.3);
            // The samples taken before the layout is learned (two profilers
            // starting side by side) have no Lua frames yet.
            expect(total(withLua) / total(viaC)).toBeGreaterThan(0.9);
            for (const s of withLua) {
              const at = s.frames.findIndex((f) => f.includes('getpid'));
              expect(s.frames.slice(0, at).filter((f) => frameKind(f) === 'lua').at(-1), s.frames.join(';')).toMatch(/^ffi_loop \(/);
            }
          }
        });
      } finally {
        for (const { child } of children) child.kill('SIGKILL');
      }
    });

    if (runsUnderNginx(release)) {
      it(`nginx worker on its libluajit-5.1.so.2: its own table; every function within ${TOLERANCE_PP} pp, JIT on and off`, async () => {
        for (const jit of ['jit-on', 'jit-off'] as const) {
          const fixture: Fixture = await startFixture({ jit, luajitLib: build().lib });
          const load = startLoad(fixture.port, '/work', 30);
          try {
            for (let i = 0; i < 5; i++) await fixture.get('/work');
            const target = { pid: fixture.master, reset: () => fixture.get('/truth/reset'), truth: () => fixture.get('/truth') };
            const { run, truth } = await profileWorkload(target, jit, []);
            expectChosen(run.stderr, table, release.luajitVersion);
            expect(truth.version).toBe(release.luajitVersion);
            expect(truth.gc64).toBe(release.mode === 'gc64');
            expectShares(`${table} nginx ${jit}`, run.stacks, truth);
          } finally {
            load.child.kill();
            await load.done;
            await fixture.stop();
          }
        }
      });
    }
  });
}

describe('a release whose table is taken away', () => {
  const gone = RELEASES.find((r) => r.name === 'luajit2-2.1-20240314' && r.mode === 'gc64')!;
  let dir: string;
  let fixture: Fixture | null = null;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-tables-'));
  });
  afterAll(async () => {
    await fixture?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The committed tables but those of `name` (both modes, or one). */
  function tablesWithout(name: string, mode?: 'gc64' | 'nogc64'): string {
    const out = mkdtempSync(join(dir, `${name}-${mode ?? 'all'}-`));
    const src = join(repoRoot, 'luajit-offsets', 'tables');
    for (const f of readdirSync(src)) if (!(f.startsWith(`${name}-`) && (!mode || f.endsWith(`-${mode}.json`)))) copyFileSync(join(src, f), join(out, f));
    return out;
  }

  const oneLine = (stderr: string) => stderr.trim().split('\n').at(-1)!;

  it('is refused with one line naming the library, what it says and how to make a table (exit 10), standalone and in doctor', async () => {
    const tables = tablesWithout(gone.name);
    const s = await startStandalone(luajitBuild(gone.name, gone.mode).luajit, 'jit-on');
    try {
      const run = await profile(['--pid', String(s.pid), '--duration', '2'], undefined, { APISIX_PROFILE_LUAJIT_TABLES: tables });
      expect(run.code, run.stderr).toBe(10);
      const line = oneLine(run.stderr);
      expect(line).toMatch(
        new RegExp(
          `^apisix-profile: LuaJIT at \\S+/${tableOf(gone)}/src/luajit: says '${gone.luajitVersion.replace(/\./g, '\\.')}', exports lua_setexdata, and no offset table was made from that release \\(.*\\): make one with \`luajit-offsets/generate\\.sh --source <its source tarball> gc64\\|nogc64\` \\(luajit-offsets/README\\.md\\)$`,
        ),
      );
      expect(run.stacks).toEqual([]);
      // doctor's LuaJIT line is the same refusal, and its exit code.
      const doctor = await runCliEnv(['doctor', '--json', '--pid', String(s.pid)], undefined, { APISIX_PROFILE_LUAJIT_TABLES: tables });
      const report = JSON.parse(doctor.stdout) as { exitCode: number; checks: { id: string; level: string; summary: string }[] };
      const luajit = report.checks.find((c) => c.id === 'luajit');
      expect(luajit, doctor.stdout).toMatchObject({ level: 'fail', summary: `pid ${s.pid}: ${line.replace(/^apisix-profile: /, '')}` });
      expect(report.checks.filter((c) => c.level === 'fail').map((c) => c.id), doctor.stdout).toEqual(['luajit']);
      expect(report.exitCode).toBe(10);
      expect(doctor.code).toBe(10);
    } finally {
      await s.stop();
    }
  });

  it('is refused when the tables of its release exist but none fits its memory (its mode is missing), standalone', async () => {
    const tables = tablesWithout(gone.name, 'gc64');
    const s = await startStandalone(luajitBuild(gone.name, gone.mode).luajit, 'jit-on');
    try {
      // No Lua API call to catch: the VM's DISPATCH register tells that it runs, and no table reads it.
      const run = await profile(['--pid', String(s.pid), '--duration', '3'], undefined, { APISIX_PROFILE_LUAJIT_TABLES: tables });
      expect(run.code, run.stderr).toBe(10);
      expect(oneLine(run.stderr)).toMatch(new RegExp(`^apisix-profile: LuaJIT at \\S+/${tableOf(gone)}/src/luajit: says .*none of the offset tables ${gone.name}-nogc64 matches its memory`));
    } finally {
      await s.stop();
    }
  });

  it('is refused when the tables of its release exist but none fits its memory (its mode is missing), under nginx', async () => {
    const tables = tablesWithout(gone.name, 'gc64');
    fixture = await startFixture({ jit: 'jit-on', luajitLib: luajitBuild(gone.name, gone.mode).lib });
    const load = startLoad(fixture.port, '/work', 10);
    try {
      const run = await profile(['--pid', String(fixture.master), '--duration', '3'], undefined, { APISIX_PROFILE_LUAJIT_TABLES: tables });
      expect(run.code, run.stderr).toBe(10);
      expect(oneLine(run.stderr)).toMatch(
        new RegExp(`^apisix-profile: LuaJIT at \\S+: says '${gone.luajitVersion.replace(/\./g, '\\.')}', exports lua_setexdata, and none of the offset tables ${gone.name}-nogc64 matches its memory .*generate\\.sh --source`),
      );
    } finally {
      load.child.kill();
      await load.done;
    }
  });
});

function tableOf(r: { name: string; mode: string }): string {
  return `${r.name}-${r.mode}`;
}
