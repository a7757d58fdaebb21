// `profile -- <command...>` against the real fixture: the command starts
// once sampling has and sampling ends with it; its output passes through
// (to stderr when the SVG goes to stdout); a missing command is one line
// and exit 2 before anything is loaded; a failing one is exit 11 with the
// outputs written; --duration bounds it; SIGTERM (and a second Ctrl-C)
// end the command too and leave nothing behind.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { childPids, type Fixture, repoRoot, requireRoot, sleep, startFixture } from '../support/fixture.js';

const CLI = join(repoRoot, 'bin/apisix-profile.js');

/** Running: a zombie (killed, its parent gone, not yet reaped by init) is not. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Starts the CLI; resolves the wrk it starts (its child) once sampling has started. */
function startProfile(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.on('close', (code) => r({ code, stdout, stderr })),
  );
  const commandPid = async (): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      const kids = childPids(child.pid!);
      if (kids.length > 0 && stderr.includes('"msg":"sampling"')) return kids[0];
      await sleep(50);
    }
    throw new Error(`the command did not start: ${stderr}`);
  };
  return { child, exited, commandPid };
}

describe('profile -- <command...>', () => {
  let fixture: Fixture;
  let dir: string;
  let url: string;

  beforeAll(async () => {
    requireRoot();
    fixture = await startFixture({ jit: 'jit-on' });
    url = `http://127.0.0.1:${fixture.port}/work`;
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-command-'));
  });

  afterAll(async () => {
    await fixture?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const master = () => String(fixture.master);

  it('says in one line that a command is missing, exit 2, before loading anything', () => {
    const svg = join(dir, 'missing.svg');
    const r = spawnSync(process.execPath, [CLI, '--pid', master(), '-o', svg, '--', 'wrk-not-installed', url], { encoding: 'utf8' });
    expect(r.status).toBe(ExitCode.BadArguments);
    expect(r.stderr).toBe('apisix-profile: cannot run wrk-not-installed: command not found in PATH (install it, or give its path)\n');
    expect(existsSync(svg)).toBe(false);
  });

  it('keeps stdout for the SVG when -o is -, and passes the command\'s output to stderr', async () => {
    const p = startProfile(['--pid', master(), '-o', '-', '--json', join(dir, 'stdout.json'), '--', 'wrk', '-t1', '-c2', '-d2s', url]);
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(ExitCode.Ok);
    expect(r.stdout).toMatch(/^<\?xml[\s\S]*<\/svg>\s*$/);
    expect(r.stderr).toMatch(/\n\s*\d+ requests in [\d.]+s, /);
    const s = JSON.parse(readFileSync(join(dir, 'stdout.json'), 'utf8'));
    expect(s.command).toMatchObject({ argv: ['wrk', '-t1', '-c2', '-d2s', url], exitStatus: 0, signal: null });
    expect(s.command.requests).toBeGreaterThan(0);
  });

  it('fails the profile with exit 11 when the command fails, outputs written', async () => {
    const json = join(dir, 'failed.json');
    const p = startProfile(['--pid', master(), '-o', join(dir, 'failed.svg'), '--json', json, '--', 'wrk', '-t1', '-c1', '-d1s', 'http://127.0.0.1:1/']);
    const r = await p.exited;
    expect(r.code).toBe(ExitCode.CommandFailed);
    expect(r.stderr).toContain('unable to connect to 127.0.0.1:1');
    const last = JSON.parse(r.stderr.trim().split('\n').at(-1)!);
    expect(last.msg).toMatch(/^the load failed: wrk -t1 -c1 -d1s http:\/\/127\.0\.0\.1:1\/ exited with status 1 after /);
    expect(JSON.parse(readFileSync(json, 'utf8')).command).toMatchObject({ exitStatus: 1, signal: null });
    expect(readFileSync(join(dir, 'failed.svg'), 'utf8')).toMatch(/<\/svg>\s*$/);
  });

  it('stops the command at the --duration bound, and samples until it has reported', async () => {
    const json = join(dir, 'bound.json');
    const started = Date.now();
    const p = startProfile(['--pid', master(), '-d', '2', '-o', join(dir, 'bound.svg'), '--json', json, '--', 'wrk', '-t1', '-c2', '-d60s', url]);
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(ExitCode.Ok);
    expect(Date.now() - started).toBeLessThan(20_000);
    const s = JSON.parse(readFileSync(json, 'utf8'));
    expect(s.command).toMatchObject({ exitStatus: 0, stoppedBy: 'duration' });
    expect(s.command.durationSeconds).toBeGreaterThanOrEqual(2);
    expect(s.command.durationSeconds).toBeLessThan(6);
    expect(s.command.requests).toBeGreaterThan(0);
    expect(s.durationSec).toBeGreaterThanOrEqual(s.command.durationSeconds - 0.2);
  });

  it('ends the command on SIGTERM, still writes the outputs, and leaves nothing behind', async () => {
    const json = join(dir, 'term.json');
    const p = startProfile(['--pid', master(), '-o', join(dir, 'term.svg'), '--json', json, '--', 'wrk', '-t1', '-c2', '-d60s', url]);
    const wrk = await p.commandPid();
    await sleep(1000);
    p.child.kill('SIGTERM');
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(ExitCode.Ok);
    expect(alive(wrk)).toBe(false);
    const s = JSON.parse(readFileSync(json, 'utf8'));
    expect(s.command).toMatchObject({ stoppedBy: 'interrupt', exitStatus: 0 });
    expect(s.command.requests).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync('/run/apisix-profile').filter((f) => f === `${childPids(fixture.master)[0]}.lock`)).toEqual([]);
  });

  it('kills the command when a second signal makes the profile exit at once (130)', async () => {
    const p = startProfile(['--pid', master(), '-o', join(dir, 'twice.svg'), '--', 'wrk', '-t1', '-c2', '-d60s', url]);
    const wrk = await p.commandPid();
    p.child.kill('SIGINT');
    await sleep(100);
    p.child.kill('SIGINT');
    const r = await p.exited;
    expect(r.code).toBe(ExitCode.Interrupted);
    for (let i = 0; i < 20 && alive(wrk); i++) await sleep(50);
    expect(alive(wrk)).toBe(false);
  });
});
