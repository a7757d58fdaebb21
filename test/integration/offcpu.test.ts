// Off-CPU and wall-clock profiles against the fixture's blocking handlers
// (fixtures/app/blocking.lua): os.execute of a sleep, a blocking read of a
// pipe through io.*, FFI usleep and poll. Each handler measures its own time
// off the CPU (wall time less CPU time); the profile's share of blocked time
// per function must be within 3 pp of it, with the JIT on and off. The
// event loop's idle wait is reported apart and left out of the graph unless
// --include-idle; no blocking switch is lost.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { decodePprof } from '../../src/report/pprof.js';
import type { Summary } from '../../src/report/summary.js';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { type Fixture, requireRoot, runCli, sleep, startFixture, startLoad } from '../support/fixture.js';
import { BLOCKING_FUNCTIONS, type BlockingTruth, profileShares, truthShares } from '../support/offcpu.js';

const TOLERANCE_PP = 3;
const FUNCTIONS = BLOCKING_FUNCTIONS;
type Truth = BlockingTruth;

interface OffCpuRun {
  code: number | null;
  stderr: string;
  folded: string;
  summary: Summary;
  pprof: Buffer;
  truth: Truth | null;
}

async function profile(fixture: Fixture, args: string[]): Promise<OffCpuRun> {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-offcpu-'));
  try {
    let truth: Truth | null = null;
    let resetDone: Promise<unknown> | null = null;
    const out = (name: string) => join(dir, name);
    const { code, stderr } = await runCli(
      ['--pid', String(fixture.master), '--duration', '6', ...args, '-o', out('out.svg'), '--folded', out('out.folded'), '--json', out('out.json'), '--pprof', out('out.pb.gz')],
      async (line) => {
        if (line.includes('"msg":"sampling"')) resetDone = fixture.get('/block/reset');
        if (line.includes('"msg":"sampling stopped"')) {
          await resetDone;
          truth = JSON.parse(await fixture.get('/block/truth')) as Truth;
        }
      },
    );
    const read = (name: string) => {
      try {
        return readFileSync(out(name));
      } catch {
        return Buffer.alloc(0);
      }
    };
    const json = read('out.json').toString();
    return { code, stderr, folded: read('out.folded').toString(), summary: (json ? JSON.parse(json) : {}) as Summary, pprof: read('out.pb.gz'), truth };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectShares(run: OffCpuRun, label: string, onlyLeaf?: string): void {
  expect(run.truth, 'the profiler never logged its phases').not.toBeNull();
  const truth = truthShares(run.truth!);
  const got = profileShares(run.folded, onlyLeaf);
  const report = Object.fromEntries(FUNCTIONS.map((f) => [f, { profile: Number(got[f].toFixed(2)), truth: Number(truth[f].toFixed(2)) }]));
  const worst = Math.max(...FUNCTIONS.map((f) => Math.abs(got[f] - truth[f])));
  console.log(`off-CPU share error ${label}: max ${worst.toFixed(2)} pp`, JSON.stringify(report));
  for (const f of FUNCTIONS) {
    expect(truth[f], `${f} did not block`).toBeGreaterThan(2);
    expect(Math.abs(got[f] - truth[f]), `${f}: ${JSON.stringify(report[f])}`).toBeLessThan(TOLERANCE_PP);
  }
}

function sampleTypes(pprof: Buffer): string[] {
  const p = Profile.decode(gunzipSync(pprof));
  const text = p.stringTable.strings;
  return p.sampleType.map((t) => `${text[Number(t.type)]}/${text[Number(t.unit)]}`);
}

beforeAll(() => requireRoot());

for (const jit of ['jit-on', 'jit-off'] as const) {
  describe(`off-CPU profile of the blocking handlers, ${jit}`, () => {
    let fixture: Fixture;
    let load: ReturnType<typeof startLoad>;

    beforeAll(async () => {
      fixture = await startFixture({ jit });
      for (let i = 0; i < 5; i++) await fixture.get('/block');
      // One connection: the worker alternates between blocking in Lua and
      // waiting in its event loop for the next request.
      load = startLoad(fixture.port, '/block', 60, 1);
    });

    afterAll(async () => {
      load?.child.kill();
      await load?.done;
      await fixture?.stop();
    });

    it(`puts each blocking function within ${TOLERANCE_PP} pp of its own measurement, idle apart, nothing lost`, async () => {
      const run = await profile(fixture, ['--mode', 'off-cpu']);
      expect(run.code, run.stderr).toBe(0);
      expectShares(run, `off-cpu ${jit}`);
      const time = run.summary.time!;
      expect(time.kind).toBe('off_cpu');
      expect(time.switchesBlocked).toBeGreaterThan(100);
      expect(time.lostSwitches).toBe(0);
      expect(run.summary.lost).toBe(0);
      // Idle is measured but not drawn: no stack without Lua waits in epoll.
      expect(time.idleUs).toBeGreaterThan(0);
      expect(time.idleIncluded).toBe(false);
      expect(time.blockedInLuaShare).toBeGreaterThan(0.5);
      expect(run.stderr).toMatch(/\d+\.\d% idle, \d+\.\d% blocked in Lua/);
      const stacks = parseFolded(run.folded);
      expect(stacks.some((s) => s.frames.includes('[idle]'))).toBe(false);
      expect(stacks.some((s) => s.frames.includes('epoll_wait') && !s.frames.some((f) => f.includes('.lua:')))).toBe(false);
      // The switch itself is cut: blocked stacks end where the thread chose to sleep.
      expect(stacks.some((s) => s.frames.some((f) => f.startsWith('bpf_trace_run') || f === '__schedule_[k]'))).toBe(false);
      expect(stacks.some((s) => s.frames.includes('anon_pipe_read_[k]') || s.frames.includes('pipe_read_[k]'))).toBe(true);
      // Weights are time: the folded total is the blocked µs; pprof in ns.
      const foldedUs = stacks.reduce((sum, s) => sum + s.count, 0);
      expect(foldedUs).toBe(time.blockedUs);
      expect(foldedUs).toBeGreaterThan(2_000_000); // most of 6 s blocked in the handlers
      expect(sampleTypes(run.pprof)).toEqual(['off_cpu/nanoseconds']);
      const pprofNs = decodePprof(run.pprof).reduce((sum, s) => sum + s.count, 0);
      expect(pprofNs).toBe(foldedUs * 1000);
    });

    it('keeps the idle wait under [idle] with --include-idle', async () => {
      const run = await profile(fixture, ['--mode', 'off-cpu', '--include-idle', '--duration', '3']);
      expect(run.code, run.stderr).toBe(0);
      const idle = parseFolded(run.folded).filter((s) => s.frames[0] === '[idle]');
      expect(idle.length).toBeGreaterThan(0);
      expect(idle.every((s) => s.frames.includes('epoll_wait') || s.frames.includes('do_epoll_wait_[k]'))).toBe(true);
      expect(run.summary.time!.idleIncluded).toBe(true);
      expect(idle.reduce((sum, s) => sum + s.count, 0)).toBe(run.summary.time!.idleUs);
    });

    it('wall mode: CPU samples and blocked time in one graph, both in µs', async () => {
      const run = await profile(fixture, ['--mode', 'wall', '--frequency', '499']);
      expect(run.code, run.stderr).toBe(0);
      const time = run.summary.time!;
      expect(time.kind).toBe('wall');
      expect(time.onCpuUs).toBeGreaterThan(0);
      expect(time.lostSwitches).toBe(0);
      const stacks = parseFolded(run.folded);
      const offCpu = stacks.filter((s) => s.frames[s.frames.length - 1] === '[off-CPU]');
      expect(offCpu.length).toBeGreaterThan(0);
      expect(stacks.length).toBeGreaterThan(offCpu.length);
      expectShares(run, `wall ${jit}`, '[off-CPU]');
      expect(sampleTypes(run.pprof)).toEqual(['wall/nanoseconds']);
    });
  });
}

/** A 2-worker fixture for the tests of the enclosing describe block, stopped after them. */
function twoWorkerFixture(): () => Fixture {
  let fixture: Fixture | undefined;
  beforeAll(async () => {
    fixture = await startFixture({ jit: 'jit-on', workers: 2 });
  });
  afterAll(async () => {
    await fixture?.stop();
  });
  return () => fixture!;
}

// The idle wait's time is summed in the kernel's per-thread entry and read
// at the end. A lightly loaded gateway is mostly that wait, taken again
// after every request: lost there, the whole would come up short by the
// idle share.
describe('a lightly loaded gateway in wall mode with --include-idle', () => {
  const gateway = twoWorkerFixture();

  it("accounts for each worker's whole time: on the CPU, blocked, idle, preempted", async () => {
    let stop = false;
    let requests = 0;
    const loop = (async () => {
      while (!stop) {
        await gateway().get('/truth');
        requests++;
        await sleep(2);
      }
    })();
    const run = await profile(gateway(), ['--mode', 'wall', '--frequency', '499', '--include-idle', '--duration', '3']);
    stop = true;
    await loop;
    expect(run.code, run.stderr).toBe(0);
    const time = run.summary.time!;
    const accounted = parseFolded(run.folded).reduce((sum, s) => sum + s.count, 0) + (time.preemptedUs ?? 0);
    const elapsedUs = gateway().workers().length * run.summary.durationSec! * 1e6;
    console.log(`wall, ${requests} requests: ${(accounted / 1e6).toFixed(3)} s accounted of ${(elapsedUs / 1e6).toFixed(3)} s (idle ${(time.idleUs / 1e6).toFixed(3)} s)`);
    expect(requests).toBeGreaterThan(300);
    expect(time.idleUs / elapsedUs).toBeGreaterThan(0.8);
    expect(accounted / elapsedUs).toBeGreaterThan(0.95);
    expect(accounted / elapsedUs).toBeLessThan(1.05);
  });
});

// A thread blocked before the profile starts never leaves a CPU while the
// profile watches until it wakes: it counts from the start, under the stack
// /proc shows of it from outside (src/profile/blocked-at-start.ts).
describe('threads already blocked when the profile starts', () => {
  const gateway = twoWorkerFixture();

  it('an idle gateway is all idle, not "nothing measured"', async () => {
    const run = await profile(gateway(), ['--mode', 'off-cpu', '--duration', '2', '--include-idle']);
    expect(run.code, run.stderr).toBe(0);
    const time = run.summary.time!;
    // Both workers waited in epoll the whole 2 s.
    expect(time.idleUs).toBeGreaterThan(2 * 2_000_000 * 0.9);
    expect(time.blockedUs).toBe(0);
    const stacks = parseFolded(run.folded);
    for (const s of stacks) expect(s.frames[0]).toBe('[idle]');
    // Waits that began before the start, seen from outside; a worker woken
    // by a timer meanwhile waits again in a walked stack.
    const seeded = stacks.filter((s) => s.frames[1] === '[blocked before the profile started]');
    expect(seeded.length).toBeGreaterThan(0);
    for (const s of seeded) expect(s.frames[s.frames.length - 1]).toMatch(/^\[syscall epoll_(p)?wait2?\]$/);
    expect(run.stderr).toContain('the targets were idle the whole time');
  });

  it('a worker blocked in a long call counts the time it had left, not drawn as idle', async () => {
    const sent = Date.now();
    const slept = gateway().get('/block/long?ms=3000');
    await sleep(300);
    let samplingAt = 0;
    const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-offcpu-'));
    try {
      const { code, stderr } = await runCli(['--pid', String(gateway().master), '--duration', '5', '--mode', 'off-cpu', '-o', join(dir, 'out.svg'), '--folded', join(dir, 'out.folded')], (line) => {
        if (line.includes('"msg":"sampling"')) samplingAt = Date.now();
      });
      expect(code, stderr).toBe(0);
      await slept;
      const blocked = parseFolded(readFileSync(join(dir, 'out.folded'), 'utf8')).filter((s) => s.frames[0] === '[blocked before the profile started]');
      expect(blocked, 'one worker blocked in usleep at the start').toHaveLength(1);
      expect(blocked[0].frames[blocked[0].frames.length - 1]).toMatch(/^\[syscall (clock_)?nanosleep\]$/);
      // The time it had left: from the seed (just before "sampling") to the
      // call's end, within the latency of the log line and the request.
      const leftMs = sent + 3000 - samplingAt;
      console.log(`blocked before the start: ${(blocked[0].count / 1000).toFixed(0)} ms counted, ${leftMs} ms left at "sampling"`);
      expect(Math.abs(blocked[0].count / 1000 - leftMs)).toBeLessThan(250);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
