// The CLI's contract around the run: Ctrl-C still writes outputs, bad input
// gets one line and a documented exit code.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, repoRoot, requireRoot, runCli, sleep, startFixture, startLoad } from '../support/fixture.js';

describe('ending a run early', () => {
  let fixture: Fixture;
  let dir: string;

  beforeAll(async () => {
    requireRoot();
    fixture = await startFixture({ jit: 'jit-on' });
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-cli-'));
  });

  afterAll(async () => {
    await fixture?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`writes complete outputs when stopped with ${signal}`, async () => {
      const load = startLoad(fixture.port, '/work', 8);
      const svg = join(dir, `${signal}.svg`);
      const folded = join(dir, `${signal}.folded`);
      const child = spawn(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), '--pid', String(fixture.master), '--duration', '60', '-o', svg, '--folded', folded], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      while (!stderr.includes('"msg":"sampling"')) await sleep(50);
      await sleep(1500);
      const started = Date.now();
      child.kill(signal);
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      load.child.kill();
      await load.done;
      expect(code, stderr).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(stderr).toContain('stopping early');
      expect(readFileSync(svg, 'utf8')).toMatch(/<\/svg>\s*$/);
      // A Lua frame (the fixture app spreads its work over work.lua and cost.lua).
      expect(readFileSync(folded, 'utf8')).toMatch(/\.lua:\d+\) \d+\n/);
      // Nothing of ours is left in the output directory but the outputs.
      expect(existsSync(join(dir, `.${signal}.svg.${child.pid}.tmp`))).toBe(false);
    });
  }

  it('on a terminal, redraws its live line after each drain, about once a second, with the samples so far', async () => {
    const load = startLoad(fixture.port, '/work', 6);
    const svg = join(dir, 'tty.svg');
    // script(1) gives the profiler a terminal and copies what it draws to our stdout.
    const command = [process.execPath, join(repoRoot, 'bin/apisix-profile.js'), '--pid', String(fixture.master), '--duration', '3', '-o', svg].join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    load.child.kill();
    await load.done;
    expect(code, out).toBe(0);
    const draws = [...out.matchAll(/sampling \[[^\]]*\] [^,]+ of 3\.0 s, [^,]+ left, (\d+) samples/g)].map((m) => Number(m[1]));
    // The first draw, then one per drain: no timer of its own redraws it in between.
    expect(draws.length, out).toBeGreaterThanOrEqual(3);
    expect(draws.length, out).toBeLessThanOrEqual(6);
    expect(draws[0]).toBe(0);
    expect(draws.every((n, i) => i === 0 || n >= draws[i - 1])).toBe(true);
    expect(draws.at(-1)).toBeGreaterThan(0);
    expect(out).toContain('sampling stopped: reading the last samples and naming frames');
  });
});

describe('bad input', () => {
  beforeAll(() => requireRoot());

  const oneLine = (stderr: string) => stderr.trim().split('\n');

  it('rejects an invalid frequency with exit code 2', async () => {
    const run = await runCli(['--pid', '1', '--frequency', 'fast']);
    expect(run.code).toBe(2);
    expect(oneLine(run.stderr)).toEqual([expect.stringContaining('frequency must be a whole number from 1 to 10000')]);
  });

  it('rejects an invalid duration with exit code 2', async () => {
    const run = await runCli(['--pid', '1', '--duration', '-3']);
    expect(run.code).toBe(2);
    expect(oneLine(run.stderr)).toHaveLength(1);
  });

  it('says the kernel has no BTF, with exit code 5, when the BTF path holds none', async () => {
    const run = await runCli(['--pid', String(process.pid), '--btf', '/nonexistent/vmlinux', '-o', join(tmpdir(), 'btf.svg')]);
    expect(run.code).toBe(5);
    expect(oneLine(run.stderr)).toEqual([expect.stringMatching(/^apisix-profile: no kernel BTF at \/nonexistent\/vmlinux: /)]);
  });

  it('rejects an output path it cannot write, before attaching anything', async () => {
    const run = await runCli(['--pid', String(process.pid), '--output', '/nonexistent-dir/flame.svg']);
    expect(run.code).toBe(2);
    expect(oneLine(run.stderr)).toEqual(['apisix-profile: cannot write /nonexistent-dir/flame.svg: directory /nonexistent-dir is missing or not writable']);
  });

  it('says it needs root, with exit code 4, when run as another user', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-nobody-'));
    try {
      const { chmodSync } = await import('node:fs');
      chmodSync(dir, 0o777);
      // Keep only the right to read files, so the checkout may live anywhere
      // (even under /root) and the CLI still starts as uid 65534.
      const reader = ['--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search'];
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...reader, process.execPath, join(repoRoot, 'bin/apisix-profile.js'), '--pid', '1', '-o', join(dir, 'x.svg')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      expect(code, stderr).toBe(4);
      expect(oneLine(stderr)).toEqual(['apisix-profile: apisix-profile needs root (BPF, perf events, uprobes): run it with sudo']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
