// What the stacks of a real worker must show: C code called from Lua sits
// right above its Lua caller, module files are named by path, a master pid
// stands for its workers, and a process without LuaJIT still gets C frames.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameKind } from '../../src/report/frame.js';
import { parseFolded } from '../../src/report/fold.js';
import { appDir, definitionLine, type Fixture, profileToFolded, requireRoot, sleep, startFixture, startLoad } from '../support/fixture.js';

describe('stacks of a loaded fixture worker', () => {
  let fixture: Fixture;

  beforeAll(async () => {
    requireRoot();
    fixture = await startFixture({ jit: 'jit-on', workers: 2 });
    await fixture.get('/work');
  });

  afterAll(async () => {
    await fixture?.stop();
  });

  it('shows libcrypto right above the Lua function that called into it, with no Lua frame between', async () => {
    const load = startLoad(fixture.port, '/hash', 7, 2);
    await sleep(300);
    const run = await profileToFolded(['--pid', String(fixture.master), '--duration', '4', '--frequency', '499']);
    await load.done;
    expect(run.code, run.stderr).toBe(0);

    const hashFrame = `hash (${appDir}/work.lua:${definitionLine('hash', 'work.lua')})`;
    const stacks = parseFolded(run.folded);
    const total = stacks.reduce((n, s) => n + s.count, 0);
    const crypto = stacks.filter((s) => s.frames.some((f) => f.includes('libcrypto')));
    const cryptoSamples = crypto.reduce((n, s) => n + s.count, 0);
    expect(cryptoSamples / total, 'share of samples in libcrypto').toBeGreaterThan(0.3);
    // Samples taken before the profiler has located a worker's LuaJIT (the
    // request in progress at attach time, up to ~0.2 s of hashing, makes
    // no API call) cannot have Lua frames yet: allow them.
    const withLua = crypto.filter((s) => s.frames.some((f) => frameKind(f) === 'lua'));
    expect(withLua.reduce((n, s) => n + s.count, 0) / cryptoSamples).toBeGreaterThan(0.9);
    for (const s of withLua) {
      const at = s.frames.findIndex((f) => f.includes('libcrypto'));
      const luaBelow = s.frames.slice(0, at).map((f, i) => ({ f, i })).filter(({ f }) => frameKind(f) === 'lua');
      expect(luaBelow.length, s.frames.join(';')).toBeGreaterThan(0);
      const caller = luaBelow[luaBelow.length - 1];
      expect(caller.f, s.frames.join(';')).toBe(hashFrame);
      // Between the caller and libcrypto: native frames only.
      expect(s.frames.slice(caller.i + 1, at).every((f) => frameKind(f) !== 'lua'), s.frames.join(';')).toBe(true);
    }
  });

  it('names a function from a required module file by the file path, and profiles every worker of a master', async () => {
    const workers = fixture.workers();
    expect(workers.length).toBe(2);
    const load = startLoad(fixture.port, '/work', 6, 8);
    await sleep(300);
    const run = await profileToFolded(['--pid', String(fixture.master), '--duration', '3', '--frequency', '199']);
    await load.done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.folded).toContain(`(${appDir}/cost.lua:${definitionLine('gamma')})`);
    for (const pid of workers) expect(run.stderr).toContain(`${pid}:`);
  });

  it('profiles a single worker when given a worker pid', async () => {
    const [worker] = fixture.workers();
    const load = startLoad(fixture.port, '/work', 5, 8);
    await sleep(300);
    const run = await profileToFolded(['--pid', String(worker), '--duration', '2', '--frequency', '199']);
    await load.done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`\\(${worker}:\\d+\\)`));
  });
});

describe('targets without LuaJIT and bad targets', () => {
  beforeAll(() => requireRoot());

  it('profiles C frames only, with a warning, for a process that has no LuaJIT', async () => {
    const busy = spawn('bash', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    try {
      await sleep(200);
      const run = await profileToFolded(['--pid', String(busy.pid), '--duration', '1', '--frequency', '199']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain('has no LuaJIT mapped: profiling C frames only');
      const stacks = parseFolded(run.folded);
      expect(stacks.reduce((n, s) => n + s.count, 0)).toBeGreaterThan(50);
      expect(stacks.every((s) => s.frames.every((f) => frameKind(f) !== 'lua'))).toBe(true);
    } finally {
      busy.kill('SIGKILL');
    }
  });

  it('says in one line that a pid does not exist, with exit code 3', async () => {
    const run = await profileToFolded(['--pid', '4194000', '--duration', '1']);
    expect(run.code).toBe(3);
    expect(run.stderr.trim().split('\n')).toEqual(['apisix-profile: no process with pid 4194000: check the pid (e.g. pgrep -a nginx)']);
  });
});
