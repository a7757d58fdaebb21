import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readProcessesWithCgroups,
  resolveContainer,
  resolveContainerProcesses,
  type ContainerProcess,
} from '../../src/target/container-target.js';
import { ContainerError, type ContainerInfo } from '../../src/target/docker.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/cgroup/${name}`, import.meta.url), 'utf8');

const ID = 'abdae8ea9cc3fec5db73bcd1d5caf2108991ef23443e43a601d4d9d7c0ac5c0c';
const OTHER = 'b'.repeat(64);
const inCg = fixture('v1-cgroupfs-hybrid.cgroup');
const otherCg = `0::/docker/${OTHER}\n`;
const hostCg = '0::/\n';
const nsCg = fixture('v1-cgroupns-private.cgroup');

const container: ContainerInfo = { id: ID, name: 'apisix', running: true, pid: 19877, state: 'running' };

function proc(pid: number, ppid: number, cmdline: string, cgroup: string | null, nspid: number[] | null): ContainerProcess {
  return { pid, ppid, comm: cmdline.split(' ')[0].slice(0, 15), cmdline, cgroup, nspid };
}

// The container as seen from the host here (captured with docker top), plus
// neighbours: a host nginx and another container's nginx.
const procs: ContainerProcess[] = [
  proc(1, 0, '/sbin/init', hostCg, [1]),
  proc(500, 1, 'nginx: master process nginx -p /tmp/fx1', hostCg, [500]),
  proc(501, 500, 'nginx: worker process', hostCg, [501]),
  proc(19855, 1, '/usr/bin/containerd-shim-runc-v2 -id ' + ID, hostCg, [19855]),
  proc(19877, 19855, 'nginx: master process /usr/sbin/nginx -p /app/nginx/ -c conf/nginx.conf', inCg, [19877, 1]),
  proc(19908, 19877, 'nginx: worker process', inCg, [19908, 7]),
  proc(19909, 19877, 'nginx: worker process', inCg, [19909, 8]),
  proc(19950, 19855, '/usr/sbin/nginx -t', inCg, [19950, 20]), // docker exec
  proc(20000, 1, 'nginx: master process /usr/sbin/nginx', otherCg, [20000, 1]),
  proc(20001, 20000, 'nginx: worker process', otherCg, [20001, 7]),
];

describe('resolveContainerProcesses', () => {
  it('finds the master and the workers with their pids inside the container', () => {
    expect(resolveContainerProcesses(container, procs)).toEqual({
      container,
      masterPids: [19877],
      workers: [
        { hostPid: 19908, containerPid: 7 },
        { hostPid: 19909, containerPid: 8 },
      ],
    });
  });

  it('maps a pid inside the container: a master stands for its workers', () => {
    expect(resolveContainerProcesses(container, procs, { pidInContainer: 1 })).toMatchObject({
      masterPids: [19877],
      workers: [{ hostPid: 19908 }, { hostPid: 19909 }],
      target: { hostPid: 19877, containerPid: 1 },
    });
    expect(resolveContainerProcesses(container, procs, { pidInContainer: 8 })).toMatchObject({
      masterPids: [],
      workers: [{ hostPid: 19909, containerPid: 8 }],
      target: { hostPid: 19909, containerPid: 8 },
    });
    expect(resolveContainerProcesses(container, procs, { pidInContainer: 20 }).workers).toEqual([
      { hostPid: 19950, containerPid: 20 },
    ]);
  });

  it("refuses a pid that is not the container's (not even another container's)", () => {
    const err = catchError(() => resolveContainerProcesses(container, procs, { pidInContainer: 500 }));
    expect(err.kind).toBe('no-such-pid-in-container');
    expect(err.message).toBe(
      'container apisix has no process with pid 500 (give the pid as seen inside the container; docker top apisix lists host pids)',
    );
    const other = { ...container, id: OTHER, name: 'etcd', pid: 20000 };
    expect(resolveContainerProcesses(other, procs, { pidInContainer: 7 }).target).toEqual({ hostPid: 20001, containerPid: 7 });
    expect(catchError(() => resolveContainerProcesses(other, procs, { pidInContainer: 8 })).kind).toBe('no-such-pid-in-container');
  });

  it('uses the init process tree when a cgroup namespace hides the paths', () => {
    const hidden = procs.map((p) => ({ ...p, cgroup: p.cgroup === inCg ? nsCg : p.cgroup }));
    const r = resolveContainerProcesses(container, hidden);
    expect(r.masterPids).toEqual([19877]);
    expect(r.workers.map((w) => w.containerPid)).toEqual([7, 8]);
  });

  it('finds nginx under an init process (docker run --init)', () => {
    const withInit = [
      proc(22056, 22027, '/sbin/docker-init -- /usr/sbin/nginx -p /app/nginx/ -c conf/nginx.conf', inCg, [22056, 1]),
      proc(22084, 22056, 'nginx: master process /usr/sbin/nginx -p /app/nginx/ -c conf/nginx.conf', inCg, [22084, 7]),
      proc(22086, 22084, 'nginx: worker process', inCg, [22086, 8]),
    ];
    const r = resolveContainerProcesses({ ...container, pid: 22056 }, withInit);
    expect(r).toMatchObject({ masterPids: [22084], workers: [{ hostPid: 22086, containerPid: 8 }] });
  });

  it('reads container pids at the depth of the container namespace (Docker in Docker)', () => {
    const dind = [
      proc(30001, 30000, 'dockerd', inCg, [30001, 1]),
      proc(30390, 30001, 'nginx: master process nginx', `0::/docker/${ID}/docker/${OTHER}\n`, [30390, 210, 1]),
      proc(30417, 30390, 'nginx: worker process', `0::/docker/${ID}/docker/${OTHER}\n`, [30417, 212, 7]),
    ];
    const r = resolveContainerProcesses({ ...container, pid: 30001 }, dind);
    expect(r).toMatchObject({ masterPids: [30390], workers: [{ hostPid: 30417, containerPid: 212 }] });
  });

  it("works for --pid=host containers (one namespace: container pid = host pid)", () => {
    const shared = [proc(700, 1, 'nginx: master process nginx', inCg, [700]), proc(701, 700, 'nginx: worker process', inCg, [701])];
    expect(resolveContainerProcesses({ ...container, pid: 700 }, shared).workers).toEqual([{ hostPid: 701, containerPid: 701 }]);
  });

  it('errors: not running, no nginx, nothing visible', () => {
    const stopped = catchError(() => resolveContainerProcesses({ ...container, running: false, pid: 0, state: 'exited' }, procs));
    expect([stopped.kind, stopped.message]).toEqual(['not-running', 'container apisix is not running (state: exited)']);

    const noNginx = catchError(() =>
      resolveContainerProcesses(container, [proc(19877, 19855, 'etcd --data-dir /data', inCg, [19877, 1])]),
    );
    expect([noNginx.kind, noNginx.message]).toEqual(['no-nginx', 'container apisix runs no nginx master process']);

    const invisible = catchError(() => resolveContainerProcesses(container, [proc(1, 0, '/sbin/init', hostCg, [1])]));
    expect(invisible.kind).toBe('not-visible');
    expect(invisible.message).toBe(
      'container apisix runs, but none of its processes is visible here (init pid 19877): run the profiler in the host pid namespace (docker run --pid=host)',
    );
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

// resolveContainer end to end over a fake /proc and a fake dockerd.
describe('resolveContainer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-ctarget-'));
  const procRoot = join(dir, 'proc');
  const socketPath = join(dir, 'docker.sock');
  let server: http.Server;

  function writeProc(p: ContainerProcess): void {
    const d = join(procRoot, String(p.pid));
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'stat'), `${p.pid} (${p.comm}) S ${p.ppid} ${p.pid} ${p.pid} 0 -1 4194560 0 0 0 0\n`);
    writeFileSync(join(d, 'cmdline'), p.cmdline.split(' ').join('\0') + '\0');
    if (p.cgroup !== null) writeFileSync(join(d, 'cgroup'), p.cgroup);
    if (p.nspid !== null) writeFileSync(join(d, 'status'), `Name:\t${p.comm}\nPid:\t${p.pid}\nNSpid:\t${p.nspid.join('\t')}\n`);
  }

  beforeAll(async () => {
    for (const p of procs) writeProc(p);
    // A worker that exited between listing and reading status: no status file.
    writeProc(proc(19910, 19877, 'nginx: worker process', inCg, null));
    const inspect = { Id: ID, Name: '/apisix', State: { Status: 'running', Running: true, Pid: 19877 } };
    server = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/containers/apisix/json' || req.url === `/containers/${ID}/json` || req.url === '/containers/abdae/json') {
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

  it('reads processes with their cgroups', () => {
    const all = readProcessesWithCgroups(procRoot);
    expect(all.find((p) => p.pid === 19908)).toMatchObject({ ppid: 19877, cmdline: 'nginx: worker process', cgroup: inCg });
  });

  it('by name and by id prefix', async () => {
    for (const ref of ['apisix', 'abdae']) {
      const r = await resolveContainer(ref, { procRoot, docker: { socketPath } });
      expect(r.container.name).toBe('apisix');
      expect(r.masterPids).toEqual([19877]);
      expect(r.workers).toEqual([
        { hostPid: 19908, containerPid: 7 },
        { hostPid: 19909, containerPid: 8 },
      ]);
    }
  });

  it('maps pidInContainer', async () => {
    const r = await resolveContainer('apisix', { procRoot, docker: { socketPath }, pidInContainer: 7 });
    expect(r.target).toEqual({ hostPid: 19908, containerPid: 7 });
  });

  it('passes Docker errors through', async () => {
    await expect(resolveContainer('etcd', { procRoot, docker: { socketPath } })).rejects.toMatchObject({
      kind: 'no-such-container',
      message: "no container named or with id prefix 'etcd' (docker ps -a lists them)",
    });
  });
});
