// `--container NAME|ID`: the fixture app in a real Docker container (the
// local FROM-scratch image of scripts/build-test-image.sh, started with
// testcontainers), profiled from the host through the real CLI: found by
// name and by id prefix, Lua frames named, container pids next to host pids,
// the /truth shares, a reload inside the container, and the one-line errors.
// Needs root and a running dockerd (scripts/setup.sh --tests starts one); it
// fails, never skips, without them.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costShare, definitionLine, repoRoot, requireRoot, sleep, startLoad } from '../support/fixture.js';

const run = promisify(execFile);

// testcontainers on this machine: no Ryuk (it needs an image from a
// registry), and the mapped ports on loopback.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';

const IMAGE = 'apisix-profile-fixture:test';
const NAME = `apisix-profile-test-${process.pid}`;
const STOPPED = `apisix-profile-test-stopped-${process.pid}`;
const NGINX = ['/usr/sbin/nginx', '-p', '/app/nginx/', '-c', 'conf/nginx.conf'];
const FUNCTIONS = ['alpha', 'beta', 'gamma'] as const;
const TOLERANCE_PP = 5;

let container: StartedTestContainer | undefined;
let stoppedCreated = false;
let port = 0;

interface CliRun {
  code: number | null;
  stderr: string;
  folded: string;
  summary: string;
}

/** The built CLI with --folded and --summary in a temp dir; onLog sees each stderr line as it comes. */
async function profile(args: string[], opts: { env?: NodeJS.ProcessEnv; onLog?: (line: string) => void | Promise<void> } = {}): Promise<CliRun> {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-container-'));
  try {
    const folded = join(dir, 'out.folded');
    const summary = join(dir, 'out.md');
    const child = spawn(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), ...args, '-o', join(dir, 'out.svg'), '--folded', folded, '--summary', summary], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, GITHUB_STEP_SUMMARY: '', ...opts.env },
    });
    let stderr = '';
    let pending = '';
    const waits: Promise<unknown>[] = [];
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (opts.onLog) waits.push(Promise.resolve(opts.onLog(line)));
    });
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    await Promise.all(waits);
    const read = (p: string) => {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        return '';
      }
    };
    return { code, stderr, folded: read(folded), summary: read(summary) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The container's nginx workers as the host sees them (docker inspect + /proc), with their pids inside it. */
async function workers(): Promise<{ hostPid: number; containerPid: number }[]> {
  const { stdout } = await run('docker', ['inspect', '-f', '{{.State.Pid}}', NAME]);
  const master = Number(stdout.trim());
  const children = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children
    .filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('nginx: worker process'))
    .map((hostPid) => {
      const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${hostPid}/status`, 'utf8'))![1].trim().split(/\s+/).map(Number);
      return { hostPid, containerPid: nspid[nspid.length - 1] };
    });
}

function get(path: string): Promise<string> {
  return fetch(`http://127.0.0.1:${port}${path}`).then(async (res) => {
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    return res.text();
  });
}

/** wrk on the mapped port for the length of `body`, bounded in time. */
async function underLoad<T>(seconds: number, body: () => Promise<T>): Promise<T> {
  const load = startLoad(port, '/work', seconds);
  try {
    return await body();
  } finally {
    load.child.kill();
    await load.done;
  }
}


const lines = (stderr: string) => stderr.trim().split('\n');

function expectBothPids(r: CliRun, w: { hostPid: number; containerPid: number }): void {
  expect(r.code, r.stderr).toBe(0);
  expect(r.folded).toMatch(/cost\.lua:\d+\)/);
  // The final log line: `N samples in ... (HOST (INNER in container):COUNT)`.
  const last = JSON.parse(lines(r.stderr).at(-1)!) as { msg: string; containerPids: Record<string, number> };
  expect(last.msg).toContain(`(${w.hostPid} (${w.containerPid} in container):`);
  expect(last.containerPids[String(w.hostPid)]).toBe(w.containerPid);
  expect(r.summary).toContain(`| ${w.hostPid} (${w.containerPid} in container) |`);
}

beforeAll(async () => {
  requireRoot();
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}']);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `the container tests need a running Docker engine (dockerd; scripts/setup.sh --tests installs and starts one): ` +
        `docker info failed: ${(e.stderr || e.message).trim().split('\n')[0]}`,
    );
  }
  await run('bash', [join(repoRoot, 'scripts/build-test-image.sh'), IMAGE]);
  container = await new GenericContainer(IMAGE)
    .withName(NAME)
    .withExposedPorts(8080)
    .withWaitStrategy(Wait.forHttp('/truth', 8080))
    .withStartupTimeout(30_000)
    .start();
  port = container.getMappedPort(8080);
  // Warm up: LuaJIT compiles the hot loops before anything is measured.
  for (let i = 0; i < 20; i++) await get('/work');
});

afterAll(async () => {
  // Removed even when a test (or beforeAll) failed.
  if (stoppedCreated) await run('docker', ['rm', '-f', STOPPED]).catch(() => undefined);
  await container?.stop({ remove: true, removeVolumes: true, timeout: 2_000 });
});

describe('--container', () => {
  it('profiles the workers of a container found by name, naming Lua frames and both pids', async () => {
    const [w] = await workers();
    expect(w, 'the container runs no nginx worker').toBeDefined();
    const r = await underLoad(15, () => profile(['--container', NAME, '--duration', '3', '--frequency', '199']));
    expectBothPids(r, w);
    expect(r.stderr).toContain(`profiling 1 worker(s) of nginx master`);
    // Chunk names as the container sees them.
    expect(r.folded).toMatch(/\(\/app\/cost\.lua:\d+\)/);
  });

  it('finds it by id prefix (12 characters), and takes a pid inside the container', async () => {
    const [w] = await workers();
    const id = container!.getId().slice(0, 12);
    const r = await underLoad(15, () => profile(['--container', id, '--duration', '2', '--frequency', '199']));
    expectBothPids(r, w);
    expect(r.stderr).toContain(`container ${NAME} (${id})`);

    const byPid = await underLoad(15, () => profile(['--container', id, '--pid', String(w.containerPid), '--duration', '2', '--frequency', '199']));
    expectBothPids(byPid, w);
    expect(byPid.stderr).toContain(`profiling pid ${w.hostPid} (${w.containerPid} in container)`);
  });

  it(`puts each function of the containerised worker within ${TOLERANCE_PP} percentage points of its own measurement`, async () => {
    let truth: Record<string, number> | null = null;
    let resetDone: Promise<unknown> | null = null;
    const r = await underLoad(25, () =>
      profile(['--container', NAME, '--duration', '6', '--frequency', '999'], {
        onLog: async (line) => {
          if (line.includes('"msg":"sampling"')) resetDone = get('/truth/reset');
          if (line.includes('"msg":"sampling stopped"')) {
            await resetDone;
            truth = JSON.parse(await get('/truth')) as Record<string, number>;
          }
        },
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(truth, 'the profiler never logged its phases').not.toBeNull();
    const t = truth as unknown as Record<string, number>;
    const report: Record<string, { profile: number; truth: number }> = {};
    for (const fn of FUNCTIONS) report[fn] = { profile: costShare(r.folded, definitionLine(fn)), truth: (100 * t[fn]) / t.total };
    const worst = Math.max(...FUNCTIONS.map((fn) => Math.abs(report[fn].profile - report[fn].truth)));
    console.log(`share error in a container: max ${worst.toFixed(2)} pp`, JSON.stringify(report));
    for (const fn of FUNCTIONS) {
      expect(report[fn].truth, `${fn} did not run`).toBeGreaterThan(5);
      expect(Math.abs(report[fn].profile - report[fn].truth), `${fn}: ${JSON.stringify(report[fn])}`).toBeLessThan(TOLERANCE_PP);
    }
  });

  it('picks up the new worker when nginx reloads inside the container', async () => {
    const [old] = await workers();
    let reloaded: Promise<unknown> | null = null;
    const r = await underLoad(25, () =>
      profile(['--container', NAME, '--duration', '6', '--frequency', '199'], {
        onLog: (line) => {
          if (line.includes('"msg":"sampling"')) {
            reloaded = sleep(1000).then(() => container!.exec([...NGINX, '-s', 'reload']));
          }
        },
      }),
    );
    expect(reloaded, 'the profiler never logged "sampling"').not.toBeNull();
    const exec = (await reloaded) as unknown as { exitCode: number; output: string };
    expect(exec.exitCode, exec.output).toBe(0);
    expect(r.code, r.stderr).toBe(0);
    const now = await workers();
    const fresh = now.find((w) => w.hostPid !== old.hostPid);
    expect(fresh, `no new worker after the reload: ${JSON.stringify(now)}`).toBeDefined();
    expect(r.stderr).toContain(`pid ${fresh!.hostPid} joined the profile`);
    const last = JSON.parse(lines(r.stderr).at(-1)!) as { msg: string; containerPids: Record<string, number> };
    expect(last.containerPids[String(fresh!.hostPid)]).toBe(fresh!.containerPid);
    expect(last.msg).toMatch(new RegExp(`\\(.*${fresh!.hostPid} \\(${fresh!.containerPid} in container\\):[1-9]`));
  });

  it('says in one line, with exit code 3, that a container does not exist, is not running, or has no such pid', async () => {
    const unknown = await profile(['--container', 'apisix-profile-no-such-container', '--duration', '1']);
    expect(unknown.code).toBe(3);
    expect(lines(unknown.stderr)).toEqual(["apisix-profile: no container named or with id prefix 'apisix-profile-no-such-container' (docker ps -a lists them)"]);

    await run('docker', ['create', '--name', STOPPED, IMAGE]);
    stoppedCreated = true;
    const stopped = await profile(['--container', STOPPED, '--duration', '1']);
    expect(stopped.code).toBe(3);
    expect(lines(stopped.stderr)).toEqual([`apisix-profile: container ${STOPPED} is not running (state: created)`]);

    const noPid = await profile(['--container', NAME, '--pid', '4000', '--duration', '1']);
    expect(noPid.code).toBe(3);
    expect(lines(noPid.stderr)).toEqual([
      `apisix-profile: container ${NAME} has no process with pid 4000 (give the pid as seen inside the container; docker top ${NAME} lists host pids)`,
    ]);
  });

  it('names the Docker socket in one line, with exit code 3, when it is missing', async () => {
    const r = await profile(['--container', NAME, '--duration', '1'], { env: { DOCKER_HOST: 'unix:///nonexistent.sock' } });
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual([
      'apisix-profile: Docker socket /nonexistent.sock not found: is dockerd running? set DOCKER_HOST=unix://... to use another',
    ]);
  });

  it('still needs --pid without --container', async () => {
    const r = await profile([]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["apisix-profile: required option '-p, --pid <pid>' not specified"]);
  });
});
