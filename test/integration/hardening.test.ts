// The profiler under stress: targets that reload or exit mid-run, signals at
// any moment, a second profiler on the same pid, many runs against a loaded
// server. Nothing of ours may survive a run, and the target is never harmed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { childPids, type Fixture, luajitBuild, profileToFolded, repoRoot, requireRoot, runCli, sleep, startFixture, startLoad, startStandalone } from '../support/fixture.js';
import { programIdsOf, stillLoaded, uprobeEvents } from '../support/leftovers.js';

const run = promisify(execFile);
const CLI = join(repoRoot, 'bin/apisix-profile.js');

async function waitForExit(child: ReturnType<typeof spawn>): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((r) => child.on('exit', (code) => r(code)));
}

beforeAll(() => requireRoot());

describe('targets that change during a run', () => {
  let fixture: Fixture;

  beforeAll(async () => {
    fixture = await startFixture({ jit: 'jit-on', workers: 2 });
    await fixture.get('/work');
  });

  afterAll(async () => {
    await fixture?.stop();
  });

  it('keeps its samples and picks up the new workers when the master reloads', async () => {
    const before = childPids(fixture.master);
    const load = startLoad(fixture.port, '/work', 9, 4);
    const result = await profileToFolded(['--pid', String(fixture.master), '--duration', '6', '--frequency', '199'], async (line) => {
      if (line.includes('"msg":"sampling"')) {
        await sleep(2000);
        await run('nginx', ['-p', fixture.prefix, '-c', 'conf/nginx.conf', '-s', 'reload']);
      }
    });
    await load.done;
    const after = childPids(fixture.master).filter((p) => !before.includes(p));
    expect(result.code, result.stderr).toBe(0);
    expect(after.length).toBeGreaterThan(0);
    for (const pid of after) expect(result.stderr).toContain(`pid ${pid} joined the profile`);
    expect(result.folded).toMatch(/cost\.lua:\d+\) \d+\n/);
  });
});

describe('a target that exits mid-run', () => {
  it('writes what it sampled', async () => {
    const target = await startStandalone(luajitBuild('luajit2', 'gc64').luajit, 'jit-on');
    try {
      const result = await profileToFolded(['--pid', String(target.pid), '--duration', '4', '--frequency', '199'], async (line) => {
        if (line.includes('"msg":"sampling"')) {
          await sleep(1500);
          process.kill(target.pid, 'SIGKILL');
        }
      });
      expect(result.code, result.stderr).toBe(0);
      const samples = parseFolded(result.folded).reduce((n, s) => n + s.count, 0);
      expect(samples).toBeGreaterThan(50);
      expect(result.folded).toMatch(/cost\.lua:\d+\)/);
    } finally {
      await target.stop();
    }
  });
});

describe('signals at any point', () => {
  let fixture: Fixture;
  let dir: string;

  beforeAll(async () => {
    fixture = await startFixture({ jit: 'jit-on' });
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-signals-'));
  });

  afterAll(async () => {
    await fixture?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  // Delays after start: during attach, early and late in sampling, and
  // while the outputs are written (the run is 1.5 s long).
  const delays = [50, 300, 900, 1700, 2300, 2800];
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const delay of delays) {
      it(`${signal} after ${delay} ms leaves nothing behind`, async () => {
        const load = startLoad(fixture.port, '/work', 5, 2);
        const svg = join(dir, `${signal}-${delay}.svg`);
        const child = spawn(process.execPath, [CLI, '--pid', String(fixture.master), '--duration', '1.5', '-o', svg], { stdio: 'ignore' });
        await sleep(delay);
        const programs = programIdsOf(child.pid!);
        child.kill(signal);
        const code = await waitForExit(child);
        load.child.kill();
        await load.done;
        expect([0, 6, 130, null]).toContain(code);
        expect(await stillLoaded(programs)).toEqual([]);
        expect(uprobeEvents()).toBe('');
        // The output is complete or absent; no temp file.
        if (existsSync(svg)) expect(readFileSync(svg, 'utf8')).toMatch(/<\/svg>\s*$/);
        expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
        expect(readdirSync('/run/apisix-profile').filter((f) => f === `${childPids(fixture.master)[0]}.lock`)).toEqual([]);
      });
    }
  }
});

describe('samples the kernel cannot keep', () => {
  it('are counted and shown: in the last line, a warning with the fix, and the JSON summary', async () => {
    const fixture = await startFixture({ jit: 'jit-on' });
    const load = startLoad(fixture.port, '/work', 20, 4);
    const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-lost-'));
    try {
      await sleep(500);
      // Room for 4 unique stacks a second, while --lines current at 999 Hz makes hundreds.
      const json = join(dir, 'summary.json');
      const result = await profileToFolded(['--pid', String(fixture.master), '--duration', '3', '-F', '999', '--lines', 'current', '--max-stacks', '4', '--json', json]);
      expect(result.code, result.stderr).toBe(0);
      const records = result.stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; lost?: number });
      const last = records.find((r) => / samples in .* lost$/.test(r.msg));
      const lost = Number(/; (\d+) lost$/.exec(last?.msg ?? '')?.[1]);
      expect(lost).toBeGreaterThan(0);
      const warning = records.find((r) => r.level === 40 && r.msg.includes('--max-stacks'));
      expect(warning?.msg).toBe(`${lost} samples lost: more unique stacks within a second than --max-stacks 4; consider increasing it`);
      const summary = JSON.parse(readFileSync(json, 'utf8')) as { totalSamples: number; lost: number };
      expect(summary.lost).toBe(lost);
      // What was kept plus what was lost is every sample the kernel took.
      const taken = Number(/^(\d+) samples in /.exec(last!.msg)?.[1]);
      expect(summary.totalSamples + summary.lost).toBe(taken);
      expect(parseFolded(result.folded).reduce((n, st) => n + st.count, 0)).toBe(summary.totalSamples);
    } finally {
      load.child.kill();
      await load.done;
      await fixture.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a second profiler on the same target', () => {
  it('is refused with one line and exit code 7', async () => {
    const fixture = await startFixture({ jit: 'jit-on' });
    const load = startLoad(fixture.port, '/work', 20, 2);
    const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-busy-'));
    const first = spawn(process.execPath, [CLI, '--pid', String(fixture.master), '--duration', '4', '-o', join(dir, 'a.svg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let log = '';
      first.stderr!.on('data', (c) => (log += c));
      while (!log.includes('"msg":"sampling"')) await sleep(50);
      const second = await runCli(['--pid', String(fixture.master), '--duration', '1', '-o', join(dir, 'b.svg')]);
      expect(second.code).toBe(7);
      const errors = second.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
      expect(errors).toEqual([expect.stringMatching(/^apisix-profile: pid \d+ is already being profiled by apisix-profile \(pid \d+\)/)]);
      expect(await waitForExit(first)).toBe(0);
    } finally {
      first.kill('SIGKILL');
      load.child.kill();
      await load.done;
      await fixture.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the target is never harmed', () => {
  it('answers every request with 200 across 50 profile runs, with no error log lines and no worker restart', async () => {
    const fixture = await startFixture({ jit: 'jit-on', workers: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-harm-'));
    try {
      const errorLog = join(fixture.prefix, 'logs/error.log');
      const logSize = statSync(errorLog).size;
      const workers = childPids(fixture.master).sort();
      // Bounded, and stopped as soon as the 50 runs are done (about 2 min).
      const wrk = spawn('wrk', ['-t1', '-c4', '-d600s', `http://127.0.0.1:${fixture.port}/work`], { stdio: ['ignore', 'pipe', 'ignore'] });
      let wrkOut = '';
      wrk.stdout!.on('data', (c) => (wrkOut += c));
      await sleep(1000);
      for (let i = 0; i < 50; i++) {
        const r = await runCli(['--pid', String(fixture.master), '--duration', '0.5', '--frequency', '999', '-o', join(dir, 'x.svg')]);
        expect(r.code, r.stderr).toBe(0);
      }
      wrk.kill('SIGINT');
      await waitForExit(wrk);
      expect(wrkOut).toMatch(/requests in/);
      expect(wrkOut, 'wrk saw errors or non-200 answers').not.toMatch(/Non-2xx|Socket errors/);
      expect(childPids(fixture.master).sort()).toEqual(workers);
      expect(statSync(errorLog).size, readFileSync(errorLog, 'utf8').slice(logSize)).toBe(logSize);
    } finally {
      await fixture.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
