// `--container` target resolution: the pure step from a resolved container
// to the pids to sample, and the whole branch over a fake /proc and a fake
// dockerd (unix socket), including workers that a reload starts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summaryExtra, summaryLine } from '../../src/commands/profile.js';
import type { RunStats } from '../../src/profile/run.js';
import type { ResolvedContainer } from '../../src/target/container-target.js';
import { ContainerError, type ContainerInfo } from '../../src/target/docker.js';
import { containerTargets, describePid, resolveContainerTargets } from '../../src/target/resolve-container-targets.js';

const ID = 'abdae8ea9cc3fec5db73bcd1d5caf2108991ef23443e43a601d4d9d7c0ac5c0c';
const container: ContainerInfo = { id: ID, name: 'apisix', running: true, pid: 19877, state: 'running' };
const cgroup = `0::/system.slice/docker-${ID}.scope\n`;

describe('containerTargets', () => {
  it('samples the workers and remembers their pids inside the container', () => {
    const resolved: ResolvedContainer = {
      container,
      masterPids: [19877],
      workers: [
        { hostPid: 19909, containerPid: 8 },
        { hostPid: 19908, containerPid: 7 },
      ],
    };
    const t = containerTargets(resolved);
    expect(t.pids).toEqual([19908, 19909]);
    expect([...t.containerPids]).toEqual([
      [19908, 7],
      [19909, 8],
    ]);
    expect(t.label).toBe('container apisix');
    expect(t.container).toEqual({ name: 'apisix', id: 'abdae8ea9cc3' });
    expect(t.masterPids).toEqual([19877]);
    expect(containerTargets({ ...resolved, target: { hostPid: 19877, containerPid: 1 } }, 1).label).toBe('container apisix pid 1');
  });

  it('names an unnamed container by its short id', () => {
    const t = containerTargets({ container: { ...container, name: '' }, masterPids: [1], workers: [{ hostPid: 2, containerPid: 2 }] });
    expect(t.label).toBe('container abdae8ea9cc3');
  });

  it("says in one line (exit code 3) that a master has no workers", () => {
    const none = catchError(() => containerTargets({ container, masterPids: [19877], workers: [] }));
    expect([none.kind, none.exitCode, none.message]).toEqual(['no-nginx', 3, 'container apisix: nginx master 19877 has no worker processes']);
    const byPid = catchError(() => containerTargets({ container, masterPids: [19877], workers: [], target: { hostPid: 19877, containerPid: 1 } }, 1));
    expect(byPid.message).toBe('nginx master 1 in container apisix has no worker processes');
  });

  it('describes a pid with its pid inside the container', () => {
    const m = new Map([[19908, 7]]);
    expect(describePid(19908, m)).toBe('19908 (7 in container)');
    expect(describePid(500, m)).toBe('500');
  });
});

describe('summaryLine and summaryExtra with container pids', () => {
  const stats: RunStats = {
    samples: 47,
    samplesInLua: 40,
    nativeCutShort: 0,
    unwind: { samples: 0, complete: 0, noCfi: 0, badRead: 0, depth: 0, unsupported: 0 },
    samplesWithoutG: 0,
    lostMapFull: 0,
    lostNoMemory: 0,
    luaBadReads: 0,
    uprobeHits: 0,
    perPid: new Map([
      [19908, 20],
      [19909, 27],
    ]),
    vmStates: { interpreted: 0, compiled: 0, c: 0, gc: 0, jit: 0, exit: 0 },
    elapsedSec: 2,
  };

  it('shows both pids for container targets and only the host pid otherwise', () => {
    const pids = new Map([
      [19908, 7],
      [19909, 8],
    ]);
    expect(summaryLine(stats, pids)).toMatch(/^47 samples in 2\.0 s \(19908 \(7 in container\):20 19909 \(8 in container\):27\); /);
    expect(summaryLine(stats)).toMatch(/^47 samples in 2\.0 s \(19908:20 19909:27\); /);
    expect(summaryExtra(stats, 99, 't', pids).perPid).toEqual([
      { pid: 19908, samples: 20, containerPid: 7 },
      { pid: 19909, samples: 27, containerPid: 8 },
    ]);
    expect(summaryExtra(stats, 99, 't').perPid).toEqual([
      { pid: 19908, samples: 20 },
      { pid: 19909, samples: 27 },
    ]);
  });

  it('gives shares of the samples counted, not of those lost, and native walks of those unwound', () => {
    const lossy: RunStats = {
      ...stats,
      samples: 100,
      lostMapFull: 50,
      samplesInLua: 25,
      unwind: { samples: 40, complete: 30, noCfi: 10, badRead: 0, depth: 0, unsupported: 0 },
      perPid: new Map([[19908, 50]]),
    };
    expect(summaryLine(lossy)).toBe(
      '100 samples in 2.0 s (19908:50); 50.0% in Lua; 75.0% of native walks complete ' +
        '(stopped early: 10 no CFI, 0 bad read, 0 depth limit, 0 unsupported CFI); 50 lost',
    );
  });
});

// The whole branch over a fake /proc and a fake dockerd.
describe('resolveContainerTargets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-ctargets-'));
  const procRoot = join(dir, 'proc');
  const socketPath = join(dir, 'docker.sock');
  let server: http.Server;

  function writeProc(pid: number, ppid: number, cmdline: string, nspid: number[]): void {
    const d = join(procRoot, String(pid));
    mkdirSync(d, { recursive: true });
    const comm = cmdline.split(' ')[0].slice(0, 15);
    writeFileSync(join(d, 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0\n`);
    writeFileSync(join(d, 'cmdline'), cmdline.split(' ').join('\0') + '\0');
    writeFileSync(join(d, 'cgroup'), cgroup);
    writeFileSync(join(d, 'status'), `Name:\t${comm}\nPid:\t${pid}\nNSpid:\t${nspid.join('\t')}\n`);
  }

  const logged: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { info: (obj: Record<string, unknown>, msg: string) => logged.push({ obj, msg }) } as unknown as Logger;

  beforeAll(async () => {
    writeProc(19877, 19855, 'nginx: master process /usr/sbin/nginx -p /app/nginx/ -c conf/nginx.conf', [19877, 1]);
    writeProc(19908, 19877, 'nginx: worker process', [19908, 7]);
    const inspect = { Id: ID, Name: '/apisix', State: { Status: 'running', Running: true, Pid: 19877 } };
    server = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/containers/apisix/json') {
        res.end(JSON.stringify(inspect));
      } else if (req.url === '/containers/json?all=1') {
        res.end(JSON.stringify([{ Id: ID, Names: ['/apisix'], State: 'running' }]));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'No such container' }));
      }
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the workers, logs both pids, and picks up a worker a reload starts', async () => {
    const t = await resolveContainerTargets('apisix', undefined, log, { procRoot, docker: { socketPath } });
    expect(t.pids).toEqual([19908]);
    expect(t.label).toBe('container apisix');
    expect(logged.at(-1)).toEqual({
      obj: { container: 'apisix', id: 'abdae8ea9cc3', masters: [19877], workers: [{ pid: 19908, containerPid: 7 }] },
      msg: 'container apisix (abdae8ea9cc3): profiling 1 worker(s) of nginx master 19877 (1 in container): 19908 (7 in container)',
    });
    expect(t.discover?.()).toEqual([19908]);
    // nginx -s reload: a new worker of the same master.
    writeProc(20500, 19877, 'nginx: worker process', [20500, 9]);
    expect(t.discover?.()).toEqual([19908, 20500]);
    expect(t.containerPids.get(20500)).toBe(9);
  });

  it('maps --pid inside the container; a worker alone has nothing to discover', async () => {
    const t = await resolveContainerTargets('apisix', 7, log, { procRoot, docker: { socketPath } });
    expect(t.pids).toEqual([19908]);
    expect(t.label).toBe('container apisix pid 7');
    expect(t.discover).toBeUndefined();
    expect(logged.at(-1)?.msg).toBe('container apisix (abdae8ea9cc3): profiling pid 19908 (7 in container)');
  });

  it('passes the one-line errors through', async () => {
    await expect(resolveContainerTargets('etcd', undefined, log, { procRoot, docker: { socketPath } })).rejects.toMatchObject({
      kind: 'no-such-container',
      exitCode: 3,
    });
    await expect(resolveContainerTargets('apisix', undefined, log, { procRoot, docker: { socketPath: join(dir, 'missing.sock') } })).rejects.toMatchObject({
      kind: 'socket-missing',
      exitCode: 3,
      message: `Docker socket ${join(dir, 'missing.sock')} not found: is dockerd running? set DOCKER_HOST=unix://... to use another`,
    });
  });
});

function catchError(fn: () => unknown): ContainerError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ContainerError);
    return e as ContainerError;
  }
  throw new Error('expected a ContainerError');
}
