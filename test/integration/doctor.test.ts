// `doctor` on the real kernel, as root, through the built CLI: the host
// checks and every BPF program's verifier cost; with --pid, real nginx and
// LuaJIT processes (the right offset table found in a trial profile); and
// the hide seam (APISIX_PROFILE_HIDE_FEATURES) failing `doctor` and
// `profile` the way a kernel without BTF would.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../src/commands/doctor.js';
import { LOAD_VARIANTS } from '../../src/kernel/budget.js';
import { VERIFIER_BUDGET } from '../../src/kernel/verifier.js';
import { type Fixture, luajitBuild, repoRoot, requireRoot, type Standalone, startFixture, startLoad, startStandalone } from '../support/fixture.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI with its stdout and stderr; `cwd` a scratch directory (profile writes flame.svg there). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmpdir()): Promise<Run> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    cwd,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  return { code, stdout, stderr };
}

function parseReport(run: Run): DoctorReport {
  // Exactly one JSON object on stdout, nothing else.
  expect(run.stdout.trim().split('\n'), run.stderr).toHaveLength(1);
  return JSON.parse(run.stdout) as DoctorReport;
}

const check = (r: DoctorReport, id: string) => r.checks.filter((c) => c.id === id);

beforeAll(() => requireRoot());

describe('doctor on this host', () => {
  it('says a profile would work, with every BPF program within budget under every option set', async () => {
    const run = await cli(['doctor', '--json']);
    const report = parseReport(run);
    expect(run.code, run.stdout).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.checks.filter((c) => c.level === 'fail')).toEqual([]);
    expect(report.checks.slice(0, 8).map((c) => c.id)).toEqual(['root', 'kernel', 'btf', 'perf-paranoid', 'perf-events', 'uprobes', 'sched-switch', 'tracefs']);
    // The off-CPU modes' tracepoint really attached (and was detached).
    expect(check(report, 'sched-switch')[0]).toMatchObject({ level: 'pass', details: { tried: { attached: true } } });
    // The perf event really opened (through the addon), on every online CPU.
    expect(check(report, 'perf-events')[0].details?.opened).toMatchObject({ cpus: expect.any(Number) });
    // So did a uprobe (on libc's getpid, in doctor's own process).
    expect(check(report, 'uprobes')[0].summary).toMatch(/^uprobes: created one on libc\.so\.6:getpid in this process/);

    const budget = report.budget!;
    expect(budget.budget).toBe(VERIFIER_BUDGET);
    expect(budget.failures).toEqual([]);
    // Both programs in each option set, each counted and within the budget.
    expect(budget.costs).toHaveLength(3 * LOAD_VARIANTS.length);
    for (const c of budget.costs) {
      expect(c.instructions, `${c.program} (${c.variant})`).not.toBeNull();
      expect(c.instructions!, `${c.program} (${c.variant})`).toBeLessThanOrEqual(VERIFIER_BUDGET);
      expect(c.stack!, `${c.program} (${c.variant})`).toBeLessThanOrEqual(budget.stackBudget!);
      expect(c.withinBudget).toBe(true);
    }
    const programs = report.checks.filter((c) => c.id.startsWith('bpf:'));
    expect(programs.map((c) => c.id).sort()).toEqual(['bpf:learn_global_state', 'bpf:offcpu_switch', 'bpf:sample_stack']);
    for (const p of programs) {
      expect(p.level).toBe('pass');
      expect(p.summary).toMatch(
        new RegExp(
          `^BPF \\w+ verifies in [\\d,]+ instructions \\(budget 100,000, limit 1,000,000\\), stack \\d+ bytes on its deepest call chain \\(budget 384, limit 512\\) over ${LOAD_VARIANTS.length} option sets$`,
        ),
      );
    }
  });

  it('prints one marked line per check and the verdict, in text', async () => {
    const run = await cli(['doctor']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^a profile would work here/);
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^[✓!✗-] /);
    expect(lines[0]).toMatch(/^✓ running as root/);
    expect(lines.some((l) => /^✓ BPF sample_stack verifies in/.test(l))).toBe(true);
  });

  it('fails without privileges with exit code 4, and does not load the programs', async () => {
    // uid 65534 keeping only the right to read files (the checkout may live under /root).
    const caps = ['--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search'];
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...caps, process.execPath, join(repoRoot, 'bin/apisix-profile.js'), 'doctor', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: tmpdir(),
    });
    let stdout = '';
    child.stdout.on('data', (c) => (stdout += c));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, stdout).toBe(4);
    const report = JSON.parse(stdout) as DoctorReport;
    expect(check(report, 'root')[0]).toMatchObject({ level: 'fail', summary: 'running as uid 65534 without CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON' });
    expect(check(report, 'bpf-load')[0].level).toBe('skip');
    expect(report.budget).toBeNull();
  });

  it('fails a target that does not exist with exit code 3', async () => {
    const run = await cli(['doctor', '--pid', '4194304', '--json']);
    expect(run.code).toBe(3);
    const report = parseReport(run);
    expect(report.ok).toBe(false);
    expect(check(report, 'target')[0]).toMatchObject({ level: 'fail', summary: 'no process with pid 4194304' });
  });

  it('fails a container that does not exist with exit code 3 (with or without a Docker daemon)', async () => {
    const run = await cli(['doctor', '--container', 'apisix-profile-no-such-container', '--json']);
    expect(run.code, run.stdout).toBe(3);
    const failed = parseReport(run).checks.find((c) => c.level === 'fail')!;
    expect(['docker', 'container']).toContain(failed.id);
    expect(failed.summary).toMatch(/apisix-profile-no-such-container|Docker socket/);
  });
});

describe('doctor --pid', () => {
  let fixture: Fixture | undefined;
  let nogc64: Fixture | undefined;
  let standalone: Standalone | undefined;

  afterAll(async () => {
    await fixture?.stop();
    await nogc64?.stop();
    await standalone?.stop();
  });

  /** doctor --json --pid under load; the LuaJIT lines of its report. */
  async function doctorUnderLoad(f: Fixture, pid: number): Promise<DoctorReport> {
    // Many connections, so both workers of a two-worker master get some.
    const load = startLoad(f.port, '/work', 12, 16);
    try {
      const run = await cli(['doctor', '--json', '--pid', String(pid)]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      return parseReport(run);
    } finally {
      load.child.kill();
      await load.done;
    }
  }

  it("finds the master's workers, the host's OpenResty LuaJIT and its GC64 table, unwind rows, and samples", async () => {
    fixture = await startFixture({ jit: 'jit-on', workers: 2 });
    const workers = fixture.workers().sort((a, b) => a - b);
    const report = await doctorUnderLoad(fixture, fixture.master);
    expect(check(report, 'target')[0]).toMatchObject({ level: 'pass', details: { master: fixture.master, workers } });
    const [luajit] = check(report, 'luajit');
    expect(luajit.level).toBe('pass');
    // Debian's luajit2 says 2.1.0-beta3, like every luajit2 release before 2.1-20231117: all their tables
    // are candidates, Debian's own first; memory decides among them.
    expect(luajit.details).toMatchObject({ pids: workers, openresty: true, version: 'LuaJIT 2.1.0-beta3' });
    expect((luajit.details?.candidates as string[]).slice(0, 2)).toEqual(['luajit2-2.1-20230119-gc64', 'luajit2-2.1-20230119-nogc64']);
    expect(luajit.details?.path).toMatch(/libluajit-5\.1\.so/);
    // Every worker has a layout line. wrk's connections need not reach both
    // workers within the 2 s trial: one that ran no Lua is a warning, never
    // another table.
    const layouts = check(report, 'luajit-layout');
    expect(layouts.flatMap((c) => (c.details?.pids as number[]) ?? []).sort((a, b) => a - b)).toEqual(workers);
    const found = layouts.filter((c) => c.level === 'pass');
    expect(found.length, JSON.stringify(layouts)).toBeGreaterThan(0);
    for (const c of found) {
      expect(c.details?.table).toBe('luajit2-2.1-20230119-gc64');
      expect(c.summary).toContain("(OpenResty's luajit2 2.1-20230119, GC64); global_State found ");
    }
    for (const c of layouts.filter((l) => l.level !== 'pass')) expect(c.summary).toContain('was not seen running');
    const [unwind] = check(report, 'unwind');
    expect(unwind.level).toBe('pass');
    expect(Object.keys(unwind.details?.files as object).some((p) => /libluajit-5\.1\.so/.test(p))).toBe(true);
    expect(unwind.details?.rows as number).toBeGreaterThan(1000);
    const [samples] = check(report, 'samples');
    expect(samples.level).toBe('pass');
    expect(samples.details?.samples as number).toBeGreaterThan(0);
  });

  it("finds the non-GC64 table of a luajit2 built without GC64, given a worker's pid", async () => {
    const build = luajitBuild('luajit2', 'nogc64');
    nogc64 = await startFixture({ jit: 'jit-on', luajitLib: build.lib });
    const [worker] = nogc64.workers();
    const report = await doctorUnderLoad(nogc64, worker);
    expect(check(report, 'target')[0].summary).toBe(`pid ${worker} is an nginx worker (master ${nogc64.master})`);
    const [layout] = check(report, 'luajit-layout');
    expect(layout).toMatchObject({ level: 'pass', details: { table: 'luajit2-2.1-20230119-nogc64' } });
    expect(layout.summary).toContain("(OpenResty's luajit2 2.1-20230119, non-GC64)");
  });

  it('finds upstream LuaJIT in a standalone luajit process (a warning: not nginx)', async () => {
    const build = luajitBuild('luajit', 'nogc64');
    standalone = await startStandalone(build.luajit, 'jit-on');
    const run = await cli(['doctor', '--json', '--pid', String(standalone.pid)]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const report = parseReport(run);
    expect(check(report, 'target')[0].level).toBe('warn');
    expect(check(report, 'luajit')[0].details).toMatchObject({ openresty: false });
    const [layout] = check(report, 'luajit-layout');
    expect(layout).toMatchObject({ level: 'pass', details: { table: build.table } });
    expect(layout.summary).toContain('upstream LuaJIT');
  });
});

describe('APISIX_PROFILE_HIDE_FEATURES=btf (as if the kernel had no BTF)', () => {
  const env = { APISIX_PROFILE_HIDE_FEATURES: 'btf' };
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-hide-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('makes profile fail at start with exit code 5 and one line naming BTF', async () => {
    const run = await cli(['--pid', '1', '-d', '1'], env, dir);
    expect(run.code, run.stderr).toBe(5);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^apisix-profile: .*BTF/);
  });

  it('makes doctor fail, naming BTF, and skip loading the programs', async () => {
    const run = await cli(['doctor'], env, dir);
    expect(run.code).not.toBe(0);
    expect(run.code).toBe(5);
    expect(run.stdout).toMatch(/^✗ .*BTF/m);
    expect(run.stdout).toMatch(/^- BPF programs: not loaded/m);
    const json = parseReport(await cli(['doctor', '--json'], env, dir));
    expect(json.ok).toBe(false);
    expect(check(json, 'btf')[0]).toMatchObject({ ok: false, level: 'fail' });
    expect(json.budget).toBeNull();
  });
});
