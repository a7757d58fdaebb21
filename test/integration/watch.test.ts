// `watch` against the real fixture nginx under real load: a load step over
// the threshold fires once per cooldown window, no load or load below the
// threshold never; reloads are followed; SIGTERM at any point leaves no
// BPF program, lock, temp file or half-written set behind.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { childPids, type Fixture, repoRoot, requireRoot, runCli, sleep, startFixture, startLoad } from '../support/fixture.js';
import { programIdsOf, stillLoaded, uprobeEvents } from '../support/leftovers.js';

const CLI = join(repoRoot, 'bin/apisix-profile.js');
const run = promisify(execFile);

interface Watch {
  child: ChildProcess;
  /** JSON log records so far. */
  records: { level: number; msg: string; [k: string]: unknown }[];
  stderr(): string;
  exited: Promise<number | null>;
}

function startWatch(args: string[]): Watch {
  const child = spawn(process.execPath, [CLI, 'watch', '--log-format', 'json', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const records: Watch['records'] = [];
  let text = '';
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    text += chunk;
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) records.push(JSON.parse(line));
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, records, stderr: () => text, exited };
}

/** The one line per trigger: it starts with what tripped it. */
const triggers = (w: Watch) => w.records.filter((r) => /^CPU \d+% for /.test(r.msg));

/** Polls check(); on a time-out the error carries the watches' stderr, which says why. */
async function waitUntil(check: () => boolean, what: string, ms: number, ...watches: Watch[]): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${watches.map((w) => w.stderr()).join('\n---\n')}`);
    await sleep(100);
  }
}

/** Lock files of these pids under /run/apisix-profile. */
function locksOf(pids: number[]): string[] {
  if (!existsSync('/run/apisix-profile')) return [];
  return readdirSync('/run/apisix-profile').filter((f) => pids.some((p) => f === `${p}.lock`));
}

const SET = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z-pid\d+\.(svg|folded|json)$/;

/** The sets in a directory (or among these names of its files): stem -> its extensions. */
function setsIn(dir: string, names = readdirSync(dir)): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const name of names) {
    expect(name, `${dir} holds only whole sets`).toMatch(SET);
    const stem = name.slice(0, name.lastIndexOf('.'));
    sets.set(stem, [...(sets.get(stem) ?? []), name.slice(stem.length + 1)].sort());
  }
  return sets;
}

beforeAll(() => requireRoot());

describe('watch', () => {
  let fixture: Fixture;
  const dirs: string[] = [];
  const watches: Watch[] = [];
  const outDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'apisix-profile-watch-'));
    dirs.push(d);
    return d;
  };
  const watch = (args: string[]) => {
    const w = startWatch(args);
    watches.push(w);
    return w;
  };

  beforeAll(async () => {
    fixture = await startFixture({ jit: 'jit-on', workers: 1 });
    await fixture.get('/work');
  });

  afterEach(async () => {
    // A failed test must not leave a watch (and its profile) running.
    for (const w of watches.splice(0)) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGKILL');
        await w.exited;
      }
    }
  });

  afterAll(async () => {
    await fixture?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a load step over the threshold fires once per cooldown window; no load, or a threshold above the load, never', async () => {
    const over = outDir();
    const above = outDir();
    // One worker can use at most 100% of a core: 150 is never reached. The
    // other threshold is low because other work on a shared CI machine
    // may leave the worker far less than a core.
    const fires = watch(['--pid', String(fixture.master), '--cpu-above', '15', '--for', '2', '--duration', '3', '--cooldown', '60', '--out-dir', over]);
    const never = watch(['--pid', String(fixture.master), '--cpu-above', '150', '--for', '2', '--duration', '3', '--cooldown', '60', '--out-dir', above]);
    await waitUntil(() => fires.records.some((r) => r.msg.startsWith('watching ')) && never.records.some((r) => r.msg.startsWith('watching ')), 'both watches to start', 60_000, fires, never);

    // Idle: 5 s of readings without a profile.
    await sleep(5000);
    expect(triggers(fires)).toEqual([]);
    expect(readdirSync(over)).toEqual([]);

    // A 12 s load step: one profile (2 s over, 3 s of profile, then 60 s of cooldown).
    const load = startLoad(fixture.port, '/work', 12, 4);
    await load.done;
    await waitUntil(() => triggers(fires).length > 0, 'the trigger line', 30_000, fires);
    await sleep(2000);
    expect(triggers(fires)).toHaveLength(1);
    expect(triggers(never)).toEqual([]);

    const sets = setsIn(over);
    expect([...sets.values()]).toEqual([['folded', 'json', 'svg']]);
    const [stem] = sets.keys();
    expect(stem).toMatch(new RegExp(`-pid${fixture.master}$`));
    const folded = parseFolded(readFileSync(join(over, `${stem}.folded`), 'utf8'));
    expect(folded.reduce((n, s) => n + s.count, 0)).toBeGreaterThan(20);
    expect(folded.some((s) => s.frames.some((f) => f.includes('work.lua') || f.includes('cost.lua')))).toBe(true);
    const summary = JSON.parse(readFileSync(join(over, `${stem}.json`), 'utf8')) as { title: string; frequencyHz: number; workers: { pid: number }[] };
    expect(summary.frequencyHz).toBe(99);
    // Why it was taken, in the files themselves.
    expect(summary.title).toMatch(new RegExp(`^pid ${fixture.master}: CPU \\d+% for \\d+\\.\\d s \\(peak \\d+%, above 15%\\), \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`));
    expect(readFileSync(join(over, `${stem}.svg`), 'utf8')).toContain(summary.title);
    expect(summary.workers.map((w) => w.pid)).toEqual(fixture.workers());
    expect(readFileSync(join(over, `${stem}.svg`), 'utf8')).toMatch(/<\/svg>\s*$/);
    const line = triggers(fires)[0];
    expect(line.msg).toMatch(/above 15%\): profiled \d+ samples in /);
    expect(line.msg).toContain(join(over, stem));
    expect(line.overSec as number).toBeGreaterThanOrEqual(2);
    expect(line.cpuMeanPercent as number).toBeGreaterThan(15);
    expect(readdirSync(above)).toEqual([]);

    // A signal while idle (cooling down): a clean stop at once.
    const t0 = Date.now();
    fires.child.kill('SIGTERM');
    never.child.kill('SIGINT');
    expect(await fires.exited).toBe(0);
    expect(await never.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('follows the workers a reload starts, and keeps the newest --keep sets of its target only', async () => {
    const dir = outDir();
    // Older sets of this target (two go, one stays with --keep 2), another target's, and a file of the user's.
    const old = ['2020-01-01T00-00-00Z', '2020-01-02T00-00-00Z', '2020-01-03T00-00-00Z'].map((t) => `${t}-pid${fixture.master}`);
    const others = ['2019-01-01T00-00-00Z-pid1.svg', '2019-01-01T00-00-00Z-pid1.json', 'notes.txt'];
    for (const stem of old) for (const ext of ['svg', 'folded', 'json']) writeFileSync(join(dir, `${stem}.${ext}`), '');
    for (const name of others) writeFileSync(join(dir, name), '');
    const w = watch(['--pid', String(fixture.master), '--cpu-above', '15', '--for', '2', '--duration', '2', '--cooldown', '60', '--keep', '2', '--out-dir', dir]);
    await waitUntil(() => w.records.some((r) => r.msg.startsWith('watching ')), 'the watch to start', 60_000, w);
    const before = fixture.workers();
    await run('nginx', ['-p', fixture.prefix, '-c', 'conf/nginx.conf', '-s', 'reload']);
    await waitUntil(() => fixture.workers().some((p) => !before.includes(p)) && fixture.workers().every((p) => !before.includes(p)), 'the new worker', 10_000);
    const after = fixture.workers();
    const load = startLoad(fixture.port, '/work', 10, 4);
    await waitUntil(() => triggers(w).length > 0, 'the trigger line', 30_000, w);
    await load.done;
    expect(triggers(w)[0].msg).toContain('6 file(s) of older sets deleted (--keep 2)');
    const mine = readdirSync(dir).filter((n) => !others.includes(n));
    const sets = setsIn(dir, mine);
    expect([...sets.keys()].sort()).toHaveLength(2);
    expect(sets.has(old[2])).toBe(true);
    for (const name of others) expect(existsSync(join(dir, name)), name).toBe(true);
    const stem = [...sets.keys()].find((k) => k !== old[2])!;
    const summary = JSON.parse(readFileSync(join(dir, `${stem}.json`), 'utf8')) as { workers: { pid: number; samples: number }[] };
    // The CPU that tripped it and the profile are the new worker's.
    expect(summary.workers.map((w) => w.pid)).toEqual(after);
    expect(summary.workers[0].samples).toBeGreaterThan(0);
    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });

  // once: the watch passes it on, the profile stops early and is written;
  // twice: exit 130 at once; both: the watch and its profile at the same
  // moment (systemd's default KillMode=control-group): the watch exits 0,
  // the set is whole or absent.
  const CASES = {
    once: 'SIGTERM while profiling: the partial profile written',
    twice: 'two SIGTERMs while profiling: exit 130',
    both: 'SIGTERM to the watch and its profile at once',
  } as const;
  for (const [how, title] of Object.entries(CASES) as [keyof typeof CASES, string][]) {
    it(`${title}, nothing else left behind`, async () => {
      const dir = outDir();
      const load = startLoad(fixture.port, '/work', 30, 4);
      try {
        const w = watch(['--pid', String(fixture.master), '--cpu-above', '15', '--for', '1', '--duration', '60', '--cooldown', '60', '--out-dir', dir]);
        // Sampling: the profile child holds its BPF programs.
        let profiler = 0;
        let programs: number[] = [];
        await waitUntil(() => {
          profiler = childPids(w.child.pid!)[0] ?? 0;
          programs = profiler ? programIdsOf(profiler) : [];
          return programs.length > 0;
        }, 'the profile to load its programs', 60_000, w);
        await sleep(1500);
        const workers = fixture.workers();
        expect(locksOf(workers)).not.toEqual([]);
        w.child.kill('SIGTERM');
        if (how === 'both') process.kill(profiler, 'SIGTERM');
        if (how === 'twice') {
          await sleep(50);
          w.child.kill('SIGTERM');
        }
        const code = await w.exited;
        expect(code).toBe(how === 'twice' ? 130 : 0);
        // The profile child is gone too (it may take a moment after a second signal).
        await waitUntil(() => !existsSync(`/proc/${profiler}`), 'the profile child to exit', 10_000);
        expect(await stillLoaded(programs)).toEqual([]);
        expect(uprobeEvents()).toBe('');
        expect(locksOf(workers)).toEqual([]);
        // Nothing hidden (incoming directory, temp file) in the output directory.
        expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
        const sets = setsIn(dir);
        if (how === 'once') {
          expect([...sets.values()]).toEqual([['folded', 'json', 'svg']]);
          expect(triggers(w)[0].msg).toContain('stopped early by SIGTERM');
        } else if (how === 'twice') {
          expect(sets.size).toBe(0);
        } else {
          // Two SIGTERMs that reach the profile together count as one (the
          // kernel does not queue a pending signal twice): whole set, or none.
          if (sets.size === 0) expect(triggers(w)[0].msg).toMatch(/profile failed \(exit 130\).*nothing written/);
          else expect([...sets.values()]).toEqual([['folded', 'json', 'svg']]);
        }
        // The target is unharmed.
        expect(await fixture.get('/work')).toBeTruthy();
      } finally {
        load.child.kill();
        await load.done;
      }
    });
  }

  it('exits 3 with one line when the target goes, also during a long cooldown', async () => {
    const own = await startFixture({ jit: 'jit-on', workers: 1 });
    try {
      const dir = outDir();
      const w = watch(['--pid', String(own.master), '--cpu-above', '15', '--for', '1', '--duration', '1', '--cooldown', '600', '--out-dir', dir]);
      const load = startLoad(own.port, '/work', 6, 4);
      await waitUntil(() => triggers(w).length > 0, 'the trigger line', 30_000, w);
      await load.done;
      const t0 = Date.now();
      await own.stop();
      expect(await w.exited).toBe(3);
      // Checked every 5 s while cooling down, not after 600 s.
      expect(Date.now() - t0).toBeLessThan(8000);
      const lines = w.stderr().trim().split('\n');
      expect(lines.at(-1)).toBe(`apisix-profile: pid ${own.master} exited: nothing left to watch (a service manager can restart the watch with the new pid)`);
      expect(lines.filter((l) => !l.startsWith('{'))).toHaveLength(1);
    } finally {
      await own.stop();
    }
  });

  it('bad input: one line, a documented exit code, nothing created', async () => {
    const base = outDir();
    const file = join(base, 'a-file');
    writeFileSync(file, '');
    const cases: [string[], number, RegExp][] = [
      [['--pid', String(fixture.master), '--cpu-above', '50', '--keep', '0', '--out-dir', join(base, 'a')], 2, /keep must be a whole number from 1/],
      [['--pid', String(fixture.master), '--cpu-above', '0', '--out-dir', join(base, 'a')], 2, /cpu-above must be a percentage of one core above 0/],
      [['--pid', String(fixture.master), '--cpu-above', '100000', '--out-dir', join(base, 'a')], 2, /cpu-above must be .* below \d+/],
      [['--pid', String(fixture.master), '--cpu-above', '50', '--for', '0', '--out-dir', join(base, 'a')], 2, /for must be a whole number from 1/],
      [['--pid', String(fixture.master), '--cpu-above', '50', '--out-dir', join(file, 'x')], 2, /cannot write profiles to --out-dir .*a-file is a file/],
      [['--pid', '4194000', '--cpu-above', '50', '--out-dir', join(base, 'a')], 3, /no process with pid 4194000/],
      [['--cpu-above', '50', '--out-dir', join(base, 'a')], 2, /--pid .* or '--container/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(['watch', ...args])));
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i];
      expect(r.code, args.join(' ')).toBe(code);
      const lines = r.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(/^apisix-profile: /);
      expect(lines[0]).toMatch(message);
    }
    expect(readdirSync(base)).toEqual(['a-file']);
  });
});
