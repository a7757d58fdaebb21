// The profile must agree with the workload's own measurement of where its
// CPU time went (os.clock deltas per function), for every LuaJIT build and
// mode we support, with the JIT on and off: OpenResty's luajit2 under nginx
// (Debian's package, and our GC64 and non-GC64 builds via LD_LIBRARY_PATH),
// and upstream LuaJIT (which ngx_lua refuses) as a standalone process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  costShare,
  definitionLine,
  type Fixture,
  luajitBuild,
  profileToFolded,
  requireRoot,
  type Standalone,
  startFixture,
  startLoad,
  startStandalone,
} from '../support/fixture.js';

const FUNCTIONS = ['alpha', 'beta', 'gamma'] as const;
const TOLERANCE_PP = 3;

interface Truth {
  total: number;
  alpha: number;
  beta: number;
  gamma: number;
  gc64: boolean;
  jit: boolean;
}


interface Target {
  pid: number;
  reset(): Promise<unknown>;
  truth(): Promise<string>;
  stop(): Promise<void>;
}

interface Config {
  name: string;
  /** The offset table the profiler must pick. */
  table: () => string;
  gc64: boolean;
  start(jit: 'jit-on' | 'jit-off'): Promise<Target>;
}

function nginxTarget(luajitLib?: () => string) {
  return async (jit: 'jit-on' | 'jit-off'): Promise<Target> => {
    const fixture: Fixture = await startFixture({ jit, luajitLib: luajitLib?.() });
    for (let i = 0; i < 10; i++) await fixture.get('/work');
    const load = startLoad(fixture.port, '/work', 30);
    return {
      pid: fixture.master,
      reset: () => fixture.get('/truth/reset'),
      truth: () => fixture.get('/truth'),
      async stop() {
        load.child.kill();
        await load.done;
        await fixture.stop();
      },
    };
  };
}

function standaloneTarget(pkg: 'luajit', mode: 'gc64' | 'nogc64') {
  return async (jit: 'jit-on' | 'jit-off'): Promise<Target> => {
    const s: Standalone = await startStandalone(luajitBuild(pkg, mode).luajit, jit);
    return s;
  };
}

const CONFIGS: Config[] = [
  { name: "nginx + Debian's libluajit2 (GC64)", table: () => 'luajit2-2.1-20230119-gc64', gc64: true, start: nginxTarget() },
  { name: 'nginx + luajit2 built GC64', table: () => luajitBuild('luajit2', 'gc64').table, gc64: true, start: nginxTarget(() => luajitBuild('luajit2', 'gc64').lib) },
  { name: 'nginx + luajit2 built non-GC64', table: () => luajitBuild('luajit2', 'nogc64').table, gc64: false, start: nginxTarget(() => luajitBuild('luajit2', 'nogc64').lib) },
  { name: 'standalone upstream luajit GC64', table: () => luajitBuild('luajit', 'gc64').table, gc64: true, start: standaloneTarget('luajit', 'gc64') },
  { name: 'standalone upstream luajit non-GC64', table: () => luajitBuild('luajit', 'nogc64').table, gc64: false, start: standaloneTarget('luajit', 'nogc64') },
];

beforeAll(() => requireRoot());

for (const config of CONFIGS) {
  for (const jit of ['jit-off', 'jit-on'] as const) {
    describe(`${config.name}, ${jit}`, () => {
      let target: Target;

      beforeAll(async () => {
        target = await config.start(jit);
      });

      afterAll(async () => {
        await target?.stop();
      });

      it(`detects the build and puts each function within ${TOLERANCE_PP} percentage points of its own measurement`, async () => {
        let truth: Truth | null = null;
        let resetDone: Promise<unknown> | null = null;
        const run = await profileToFolded(['--pid', String(target.pid), '--duration', '6', '--frequency', '999'], async (line) => {
          if (line.includes('"msg":"sampling"')) resetDone = target.reset();
          if (line.includes('"msg":"sampling stopped"')) {
            await resetDone;
            truth = JSON.parse(await target.truth()) as Truth;
          }
        });
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain(`LuaJIT ${config.table()} found`);
        expect(truth, 'the profiler never logged its phases').not.toBeNull();
        const t = truth as unknown as Truth;
        expect(t.gc64).toBe(config.gc64);
        expect(t.jit).toBe(jit === 'jit-on');
        const report: Record<string, { profile: number; truth: number }> = {};
        for (const fn of FUNCTIONS) {
          report[fn] = { profile: costShare(run.folded, definitionLine(fn)), truth: (100 * t[fn]) / t.total };
        }
        const worst = Math.max(...FUNCTIONS.map((fn) => Math.abs(report[fn].profile - report[fn].truth)));
        console.log(`share error ${config.name} ${jit}: max ${worst.toFixed(2)} pp`, JSON.stringify(report));
        for (const fn of FUNCTIONS) {
          expect(report[fn].truth, `${fn} did not run`).toBeGreaterThan(5);
          expect(Math.abs(report[fn].profile - report[fn].truth), `${fn}: ${JSON.stringify(report[fn])}`).toBeLessThan(TOLERANCE_PP);
        }
      });
    });
  }
}
