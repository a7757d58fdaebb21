// Starts the real fixture app (fixtures/nginx/start.sh: nginx + ngx_lua on
// 127.0.0.1), loads it with wrk and runs the real CLI against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Fixture, startFixture as launchFixture } from '../../fixtures/nginx/launch.mjs';
import { parseFolded } from '../../src/report/fold.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const appDir = join(repoRoot, 'fixtures', 'app');

/** BPF tests need root; in CI a test that cannot run must fail, not skip. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('this integration test profiles real processes with BPF and must run as root (sudo npm test)');
  }
}

export { childPids, freePort } from '../../fixtures/nginx/launch.mjs';
export type { Fixture } from '../../fixtures/nginx/launch.mjs';

/** The fixture app in a temp prefix of its own (fixtures/nginx/launch.mjs, shared with the bench). */
export function startFixture(opts: { jit: 'jit-on' | 'jit-off'; workers?: number; luajitLib?: string }): Promise<Fixture> {
  return launchFixture({ ...opts, tempPrefix: 'apisix-profile-test-' });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** wrk against the fixture, bounded in time; resolves when it exits. */
export function startLoad(port: number, path: string, seconds: number, connections = 4): { done: Promise<void>; child: ChildProcess } {
  const child = spawn('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}${path}`], { stdio: 'ignore' });
  const done = new Promise<void>((res) => child.on('exit', () => res()));
  return { done, child };
}

export interface ProfileRun {
  code: number | null;
  stderr: string;
  folded: string;
}

/**
 * Runs the CLI (the built dist/, as users run it). onLog sees every stderr
 * line as it arrives, so a test can act when sampling starts or stops.
 */
export async function runCli(args: string[], onLog?: (line: string) => void | Promise<void>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let pending = '';
  const waits: Promise<unknown>[] = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (onLog) waits.push(Promise.resolve(onLog(line)));
  });
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  await Promise.all(waits);
  return { code, stderr };
}

export async function profileToFolded(args: string[], onLog?: (line: string) => void | Promise<void>): Promise<ProfileRun> {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-out-'));
  try {
    const folded = join(dir, 'out.folded');
    const { code, stderr } = await runCli([...args, '--output', join(dir, 'out.svg'), '--folded', folded], onLog);
    let text = '';
    try {
      text = readFileSync(folded, 'utf8');
    } catch {
      /* left empty: the test's assertions say what was missing */
    }
    return { code, stderr, folded: text };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The line where `function _M.<name>` is defined in fixtures/app/<file>. */
export function definitionLine(name: string, file = 'cost.lua'): number {
  const lines = readFileSync(join(appDir, file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith(`function _M.${name}(`));
  if (i < 0) throw new Error(`${file} defines no _M.${name}`);
  return i + 1;
}

/** A LuaJIT build with a committed offset table (luajit-offsets/tables/<name>-<mode>.json). */
export interface LuajitRelease {
  /** <package>-<version>: "luajit2-2.1-20240314", "luajit-2.1-20260819", "luajit2-2.1-20230119". */
  name: string;
  package: string;
  version: string;
  mode: 'gc64' | 'nogc64';
  /** Built from Debian's source package (else from a release tarball). */
  debian: boolean;
  /** The version string the library carries (jit.version). */
  luajitVersion: string;
}

/** Every LuaJIT build scripts/build-luajit-variants.sh makes: one per committed table, in file-name order. */
export function luajitReleases(): LuajitRelease[] {
  const dir = join(repoRoot, 'luajit-offsets', 'tables');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const t = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { package: string; version: string; mode: 'gc64' | 'nogc64'; source: string; luajitVersion: string };
      return { name: `${t.package}-${t.version}`, package: t.package, version: t.version, mode: t.mode, debian: t.source.startsWith('Debian source package '), luajitVersion: t.luajitVersion };
    });
}

/**
 * Where scripts/build-luajit-variants.sh left a LuaJIT build. `name` is a
 * release name from luajitReleases() ("luajit2-2.1-20240314"), or a bare
 * package name ("luajit2", "luajit") for the build of Debian's source package.
 */
export function luajitBuild(name: string, mode: 'gc64' | 'nogc64'): { dir: string; lib: string; luajit: string; table: string } {
  const releases = luajitReleases().filter((r) => r.mode === mode);
  const release = name === 'luajit2' || name === 'luajit' ? releases.find((r) => r.debian && r.package === name) : releases.find((r) => r.name === name);
  if (!release) throw new Error(`no offset table for ${name} ${mode} in luajit-offsets/tables`);
  const table = `${release.name}-${mode}`;
  const cache = process.env.APISIX_PROFILE_CACHE ?? '/var/cache/apisix-profile';
  const dir = join(cache, 'build', table);
  if (!existsSync(join(dir, 'lib', 'libluajit-5.1.so.2'))) throw new Error(`no ${table} build in ${dir}: run scripts/build-luajit-variants.sh (scripts/setup.sh --tests does)`);
  return { dir, lib: join(dir, 'lib'), luajit: join(dir, 'src', 'luajit'), table };
}

/** The standalone LuaJIT fixture (fixtures/app/standalone.lua), driven through its control files. */
export interface Standalone {
  pid: number;
  reset(): Promise<void>;
  truth(): Promise<string>;
  stop(): Promise<void>;
}

async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export async function startStandalone(luajit: string, jit: 'jit-on' | 'jit-off'): Promise<Standalone> {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-standalone-'));
  const child = spawn(luajit, [join(appDir, 'standalone.lua'), dir, jit], { stdio: 'ignore' });
  await waitFor(() => existsSync(join(dir, 'ready')), 'the standalone fixture to start');
  const request = async (name: string) => {
    writeFileSync(join(dir, name), '');
    await waitFor(() => !existsSync(join(dir, name)), `the standalone fixture to handle ${name}`);
  };
  return {
    pid: child.pid!,
    reset: () => request('reset'),
    async truth() {
      await request('dump');
      return readFileSync(join(dir, 'truth.json'), 'utf8');
    },
    async stop() {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Percent of samples (folded text) whose stack holds the function defined at cost.lua:line. */
export function costShare(folded: string, line: number): number {
  const frame = new RegExp(`cost\\.lua:${line}\\)$`);
  let total = 0;
  let hit = 0;
  for (const s of parseFolded(folded)) {
    total += s.count;
    if (s.frames.some((f) => frame.test(f))) hit += s.count;
  }
  return total ? (100 * hit) / total : 0;
}
