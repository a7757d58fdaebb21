// CPU by plugin and by nginx phase against the app's own measurement: the
// gateway fixture (fixtures/gateway/: an APISIX-like layout, plugins in
// rewrite, access, content, header/body filter and log, a timer, two
// routes) times each plugin and phase with os.clock() (exclusive of nested
// phases); one profile of it under wrk load must put each plugin's total
// share and each phase's self share within 3 percentage points of that.
// Every mode: JIT on and off, on Debian's GC64 luajit2 and on a non-GC64
// build of it (scripts/build-luajit-variants.sh) loaded through
// LD_LIBRARY_PATH; one nginx and one short profile per mode (about a
// minute for the four on two shared cores). The same profiles label samples
// with their request's URI (--group-by uri): each URI's share within 3 pp
// of the app's time for its requests (the query string cut off), and
// `report --group-by uri` reads the labels back. Then `report` on stapxx's and
// perf's folded files: plugin tables from other tools' stacks.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { frameKind } from '../../src/report/frame.js';
import { stackPhase } from '../../src/report/gateway.js';
import { childPids, freePort, luajitBuild, repoRoot, requireRoot, runCli, sleep, startLoad, startStandalone } from '../support/fixture.js';

const execFileP = promisify(execFile);
const TOLERANCE_PP = 3;
// The one fixture starter, pointed at the gateway app.
const START_SH = join(repoRoot, 'fixtures', 'nginx', 'start.sh');
const GATEWAY = join(repoRoot, 'fixtures', 'gateway');

interface Truth {
  total: number;
  plugins: Record<string, number>;
  phases: Record<string, number>;
  uris: Record<string, number>;
  jit: boolean;
  gc64: boolean;
}

interface Share {
  name: string;
  self: number;
  total: number;
  selfShare: number;
  totalShare: number;
}

interface Gateway {
  master: number;
  port: number;
  get(path: string): Promise<string>;
  stop(): Promise<void>;
}

interface Mode {
  name: string;
  jit: 'jit-on' | 'jit-off';
  gc64: boolean;
  /** A directory holding the libluajit-5.1.so.2 nginx loads; Debian's when absent. */
  luajitLib?: () => string;
}

const nonGc64 = () => luajitBuild('luajit2', 'nogc64').lib;
const MODES: Mode[] = [
  { name: 'JIT on, GC64', jit: 'jit-on', gc64: true },
  { name: 'JIT off, GC64', jit: 'jit-off', gc64: true },
  { name: 'JIT on, non-GC64', jit: 'jit-on', gc64: false, luajitLib: nonGc64 },
  { name: 'JIT off, non-GC64', jit: 'jit-off', gc64: false, luajitLib: nonGc64 },
];

async function startGateway(mode: Mode): Promise<Gateway> {
  const prefix = mkdtempSync(join(tmpdir(), 'apisix-profile-gateway-'));
  const port = await freePort();
  let master: number;
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, FIXTURE_APP: GATEWAY };
    if (mode.luajitLib) env.FIXTURE_LUAJIT_LIB = mode.luajitLib();
    const { stdout } = await execFileP('bash', [START_SH, prefix, String(port), mode.jit], { encoding: 'utf8', env });
    master = Number(stdout.trim());
  } catch (err) {
    let log = '';
    try {
      log = readFileSync(join(prefix, 'logs', 'error.log'), 'utf8');
      const pid = Number(readFileSync(join(prefix, 'logs', 'nginx.pid'), 'utf8'));
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      /* not started */
    }
    rmSync(prefix, { recursive: true, force: true });
    throw new Error(`fixtures/nginx/start.sh (FIXTURE_APP=fixtures/gateway) failed: ${(err as Error).message}\n${log}`);
  }
  for (let i = 0; i < 50 && childPids(master).length < 1; i++) await sleep(100);
  return {
    master,
    port,
    async get(path) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      const text = await res.text();
      if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
      return text;
    },
    async stop() {
      try {
        process.kill(master, 'SIGTERM');
        for (let i = 0; i < 50; i++) {
          process.kill(master, 0);
          await sleep(100);
        }
        process.kill(master, 'SIGKILL');
      } catch {
        /* exited */
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

/**
 * Percent of the content phase's samples with no Lua frame. Content runs
 * Lua from its first instruction to its last (the phase handler, the
 * plugin, ngx.say/ngx.eof and what they call), so a stack without a Lua
 * frame there is a walk that found the wrong lua_State: G->cur_L still
 * names the main thread after the body filter that ngx.eof ran returned
 * (3-9% of content samples when the walk trusted cur_L; bpf/lua_thread.bpf.h).
 */
function contentWithoutLua(foldedText: string): number {
  let content = 0;
  let bare = 0;
  for (const { frames, count } of parseFolded(foldedText)) {
    if (stackPhase(frames) !== 'content') continue;
    content += count;
    if (!frames.some((f) => frameKind(f) === 'lua')) bare += count;
  }
  return content ? (100 * bare) / content : 0;
}

for (const mode of MODES) {
  describe(`gateway fixture, ${mode.name}`, () => {
    let gw: Gateway;
    let loads: ReturnType<typeof startLoad>[] = [];
    const out = mkdtempSync(join(tmpdir(), 'apisix-profile-gateway-out-'));

    beforeAll(async () => {
      requireRoot();
      gw = await startGateway(mode);
      for (let i = 0; i < 20; i++) {
        await gw.get('/orders');
        await gw.get('/status');
      }
      // A query string: --label uri keeps the path only.
      loads = [startLoad(gw.port, '/orders?page=2', 20, 2), startLoad(gw.port, '/status', 20, 2)];
      await sleep(500);
    });

    afterAll(async () => {
      for (const l of loads) l.child.kill();
      await Promise.all(loads.map((l) => l.done));
      await gw?.stop();
      rmSync(out, { recursive: true, force: true });
    });

    it(`puts each plugin and each phase within ${TOLERANCE_PP} pp of the app's own measurement`, async () => {
      let truth: Truth | null = null;
      let resetDone: Promise<unknown> | null = null;
      // The app's numbers when the labels began (the URI offset learned): samples before have none.
      let atLabels: Promise<Truth> | null = null;
      const json = join(out, 'summary.json');
      const folded = join(out, 'out.folded');
      const run = await runCli(
        ['--pid', String(gw.master), '--duration', '5', '--frequency', '999', '-o', join(out, 'out.svg'), '--json', json, '--folded', folded, '--group-by', 'uri', '--log-format', 'json'],
        async (line) => {
          if (line.includes('"msg":"sampling"')) resetDone = gw.get('/truth/reset');
          if (line.includes('"msg":"--label uri: requests keep their URI')) {
            atLabels = (async () => {
              await resetDone;
              return JSON.parse(await gw.get('/truth')) as Truth;
            })();
          }
          if (line.includes('"msg":"sampling stopped"')) {
            await resetDone;
            truth = JSON.parse(await gw.get('/truth')) as Truth;
          }
        },
      );
      expect(run.code, run.stderr).toBe(0);
      expect(truth, 'the profiler never logged its phases').not.toBeNull();
      const t = truth as unknown as Truth;
      expect(t.jit).toBe(mode.jit === 'jit-on');
      expect(t.gc64).toBe(mode.gc64);
      const summary = JSON.parse(readFileSync(json, 'utf8')) as { totalSamples: number; plugins: Share[]; phases: Share[]; uris: Share[] };

      const compare = (measured: Record<string, number>, profiled: Share[], key: 'totalShare' | 'selfShare') =>
        Object.fromEntries(
          Object.entries(measured).map(([name, seconds]) => {
            const p = profiled.find((e) => e.name === name);
            return [name, { profile: Number((100 * (p ? p[key] : 0)).toFixed(2)), truth: Number(((100 * seconds) / t.total).toFixed(2)) }];
          }),
        );
      const plugins = compare(t.plugins, summary.plugins, 'totalShare');
      const phases = compare(t.phases, summary.phases, 'selfShare');
      expect(atLabels, 'the URI offset was not learned').not.toBeNull();
      const before = await (atLabels as unknown as Promise<Truth>);
      const uriSeconds = Object.fromEntries(Object.entries(t.uris).map(([name, s]) => [name, s - (before.uris[name] ?? 0)]));
      const uris = compare(uriSeconds, summary.uris, 'totalShare');
      const worst = (r: Record<string, { profile: number; truth: number }>) =>
        Math.max(...Object.values(r).map((v) => Math.abs(v.profile - v.truth))).toFixed(2);
      console.log(`gateway ${mode.name}: ${summary.totalSamples} samples; plugins max ${worst(plugins)} pp ${JSON.stringify(plugins)}`);
      console.log(`gateway ${mode.name}: phases max ${worst(phases)} pp ${JSON.stringify(phases)}`);
      console.log(`gateway ${mode.name}: URIs max ${worst(uris)} pp ${JSON.stringify(uris)} (labels from ${(before.total).toFixed(2)} s)`);
      const bare = contentWithoutLua(readFileSync(folded, 'utf8'));
      console.log(`gateway ${mode.name}: content samples without a Lua frame ${bare.toFixed(2)}%`);
      console.log(`gateway ${mode.name}: other phases ${JSON.stringify(summary.phases.filter((p) => !(p.name in t.phases)).map((p) => [p.name, (100 * p.selfShare).toFixed(2)]))}`);

      // What is left: ngx_lua's own work around lua_resume.
      expect(bare, 'content-phase samples without a Lua frame (%)').toBeLessThan(2);
      expect(Object.keys(plugins).sort()).toEqual(['ip-restriction', 'jwt-auth', 'limit-count', 'mocking', 'prometheus', 'response-rewrite', 'server-info']);
      expect(Object.keys(phases).sort()).toEqual(['access', 'body_filter', 'content', 'header_filter', 'log', 'rewrite', 'timer']);
      // No plugin but these: the router and the phase runners are gateway code.
      expect(summary.plugins.map((p) => p.name).sort()).toEqual(Object.keys(plugins).sort());
      // The path alone: both routes, and nothing else but the test's own
      // requests for the app's numbers (a sample may land in one).
      const TRUTH_PATHS = ['/truth', '/truth/reset'];
      const names = summary.uris.map((u) => u.name);
      expect(names).toEqual(expect.arrayContaining(['/orders', '/status']));
      for (const name of names) expect(['/orders', '/status', ...TRUTH_PATHS]).toContain(name);
      for (const [name, v] of Object.entries(uris)) {
        expect(v.truth, `${name} did not run`).toBeGreaterThan(10);
        expect(Math.abs(v.profile - v.truth), `URI ${name}: ${JSON.stringify(v)}`).toBeLessThan(TOLERANCE_PP);
      }
      for (const [name, v] of [...Object.entries(plugins), ...Object.entries(phases)]) {
        if (name !== 'server-info' && name !== 'timer') expect(v.truth, `${name} did not run`).toBeGreaterThan(3);
        expect(Math.abs(v.profile - v.truth), `${name}: ${JSON.stringify(v)}`).toBeLessThan(TOLERANCE_PP);
      }

      // --group-by phase on the same stacks: every stack under its phase.
      const grouped = join(out, 'grouped.folded');
      const rep = await runCli(['report', folded, '--group-by', 'phase', '--folded', grouped, '--log-format', 'json']);
      expect(rep.code, rep.stderr).toBe(0);
      const firsts = new Set(readFileSync(grouped, 'utf8').trim().split('\n').map((l) => l.split(';')[0]));
      for (const phase of ['rewrite', 'access', 'content', 'header_filter', 'body_filter', 'log']) expect(firsts).toContain(`[phase:${phase}]`);
      for (const f of firsts) expect(f).toMatch(/^\[(phase:[a-z_]+|nginx: [a-z ]+|idle|unknown)\]$/);

      // --group-by uri: the profile's labels are the folded file's first frames; report reads them back.
      const byUri = join(out, 'by-uri.json');
      const again = await runCli(['report', folded, '--group-by', 'uri', '--json', byUri, '-o', join(out, 'by-uri.svg'), '--log-format', 'json']);
      expect(again.code, again.stderr).toBe(0);
      expect((JSON.parse(readFileSync(byUri, 'utf8')) as { uris: Share[] }).uris).toEqual(summary.uris);
      const uriFirsts = new Set(readFileSync(folded, 'utf8').trim().split('\n').map((l) => l.split(';')[0]).filter((f) => f.startsWith('[uri:')));
      expect([...uriFirsts].sort()).toEqual(names.map((n) => `[uri:${n}]`).sort());
    }, 60_000);
  });
}

// --label uri where no label can be had: one warning line, an empty URI
// table, and the profile as it would be without the option.
describe('--label uri without labels', () => {
  const out = mkdtempSync(join(tmpdir(), 'apisix-profile-gateway-nolabels-'));
  beforeAll(() => requireRoot());
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const profile = async (pid: number) => {
    const json = join(out, 'summary.json');
    const run = await runCli(['--pid', String(pid), '--duration', '2', '--frequency', '999', '-o', join(out, 'o.svg'), '--json', json, '--label', 'uri', '--log-format', 'json']);
    const warnings = run.stderr.split('\n').filter((l) => l.includes('--label uri:'));
    return { run, warnings, uris: (JSON.parse(readFileSync(json, 'utf8')) as { uris: Share[] }).uris };
  };

  it("upstream LuaJIT (no lua_setexdata): one warning line, exit 0, no URIs", async () => {
    const app = await startStandalone(luajitBuild('luajit', 'gc64').luajit, 'jit-on');
    try {
      const { run, warnings, uris } = await profile(app.pid);
      expect(run.code, run.stderr).toBe(0);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("is not OpenResty's LuaJIT (no lua_setexdata): no URI labels");
      expect(uris).toEqual([]);
    } finally {
      await app.stop();
    }
  }, 60_000);

  it('a gateway serving no request while it runs (its timer runs Lua outside any): one warning line, no URIs', async () => {
    const gw = await startGateway(MODES[0]);
    try {
      const { warnings, uris } = await profile(gw.master);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('could not learn where');
      expect(uris).toEqual([]);
    } finally {
      await gw.stop();
    }
  }, 60_000);
});

// `report` on folded files other tools wrote: stapxx's Lua frames
// (`@chunk:line`) name plugins as ours do; perf's stacks have no Lua frame,
// so their plugin table is empty, present, and their phases still come
// from the native frames.
describe('report on folded files from other tools', () => {
  const out = mkdtempSync(join(tmpdir(), 'apisix-profile-gateway-report-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const report = async (input: string) => {
    const json = join(out, 'summary.json');
    const md = join(out, 'summary.md');
    const run = await runCli(['report', input, '-o', join(out, 'r.svg'), '--json', json, '--summary', md, '--log-format', 'json']);
    expect(run.code, run.stderr).toBe(0);
    return { summary: JSON.parse(readFileSync(json, 'utf8')) as { plugins: Share[]; phases: Share[] }, markdown: readFileSync(md, 'utf8') };
  };

  it('stapxx: a plugin table from its @chunk:line frames (APISIX files and directories, Kong)', async () => {
    const { summary, markdown } = await report(join(GATEWAY, 'stapxx.folded'));
    expect(summary.plugins.map((p) => [p.name, p.self, p.total])).toEqual([
      ['limit-count', 120, 120],
      ['jwt-auth', 80, 120],
      ['prometheus', 0, 60],
      ['rate-limiting', 10, 10],
      ['server-info', 10, 10],
    ]);
    expect(summary.phases.map((p) => p.name)).toEqual(['access', 'log', 'header_filter', 'content', 'timer']);
    expect(markdown).toMatch(/\| 1 \| `limit-count` \| 35\.29% \(120\) \| 35\.29% \(120\) \|/);
  });

  it('perf: no Lua frames, so an empty plugin table; phases from the native frames', async () => {
    const { summary } = await report(join(repoRoot, 'fixtures', 'report', 'perf.folded'));
    expect(summary.plugins).toEqual([]);
    expect(summary.phases.map((p) => p.name)).toContain('content');
  });
});
