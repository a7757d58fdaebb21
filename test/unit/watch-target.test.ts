// What watch reads each second, over a fake /proc (and a fake dockerd for
// --container): the master's current workers across a reload, their CPU
// time, and when the target counts as gone.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveWatchTarget } from '../../src/watch/watch-target.js';

const ID = 'abdae8ea9cc3fec5db73bcd1d5caf2108991ef23443e43a601d4d9d7c0ac5c0c';
const log = { info: () => {}, debug: () => {}, warn: () => {} } as unknown as Logger;

describe('resolveWatchTarget', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-watch-target-'));
  const procRoot = join(dir, 'proc');
  const socketPath = join(dir, 'docker.sock');
  let server: http.Server;

  /** A process: its stat (CPU time in 10 ms ticks: utime, stime), cmdline, cgroup and NSpid. */
  function writeProc(pid: number, ppid: number, cmdline: string, ticks: [number, number] = [0, 0], nspid: number[] = [pid]): void {
    const d = join(procRoot, String(pid));
    mkdirSync(join(d, 'task', String(pid)), { recursive: true });
    const comm = cmdline.split(' ')[0].slice(0, 15);
    writeFileSync(join(d, 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0 ${ticks[0]} ${ticks[1]} 0 0 20 0 1 0\n`);
    writeFileSync(join(d, 'cmdline'), cmdline.split(' ').join('\0') + '\0');
    writeFileSync(join(d, 'cgroup'), `0::/system.slice/docker-${ID}.scope\n`);
    writeFileSync(join(d, 'status'), `Name:\t${comm}\nPid:\t${pid}\nNSpid:\t${nspid.join('\t')}\n`);
    writeFileSync(join(d, 'task', String(pid), 'children'), '');
  }
  function setChildren(pid: number, children: number[]): void {
    writeFileSync(join(procRoot, String(pid), 'task', String(pid), 'children'), children.map((c) => `${c} `).join(''));
  }
  const gone = (pid: number) => rmSync(join(procRoot, String(pid)), { recursive: true, force: true });

  beforeAll(async () => {
    const inspect = { Id: ID, Name: '/apisix', State: { Status: 'running', Running: true, Pid: 500 } };
    server = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/containers/apisix/json') res.end(JSON.stringify(inspect));
      else {
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'No such container' }));
      }
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  beforeEach(() => {
    rmSync(procRoot, { recursive: true, force: true });
    writeProc(500, 1, 'nginx: master process /usr/sbin/nginx', [5, 5], [500, 1]);
    writeProc(501, 500, 'nginx: worker process', [100, 20], [501, 7]);
    writeProc(502, 500, 'nginx: worker process', [300, 0], [502, 8]);
    setChildren(500, [501, 502]);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a master: its workers, followed across a reload, their CPU time; gone when the master is', async () => {
    const t = await resolveWatchTarget({ pid: 500 }, log, { procRoot });
    expect([t.tag, t.label, t.profileArgs]).toEqual(['pid500', 'pid 500', ['--pid', '500']]);
    expect(t.current()).toEqual([501, 502]);
    const r = t.readCpu([501, 502, 999], 12.5);
    expect(r.at).toBe(12.5);
    expect([...r.cpuMs]).toEqual([
      [501, 1200],
      [502, 3000],
    ]);
    // nginx -s reload: 501 and 502 go, 503 comes.
    writeProc(503, 500, 'nginx: worker process', [1, 1]);
    setChildren(500, [503]);
    gone(501);
    gone(502);
    expect(t.current()).toEqual([503]);
    // A moment without workers is not the end; the master gone is.
    setChildren(500, []);
    expect(t.current()).toEqual([]);
    gone(500);
    expect(t.current()).toBeNull();
  });

  it('a single process: itself, until it exits', async () => {
    const t = await resolveWatchTarget({ pid: 501 }, log, { procRoot });
    expect(t.current()).toEqual([501]);
    gone(501);
    expect(t.current()).toBeNull();
  });

  it('no such pid, or a master without workers: one line, exit code 3', async () => {
    await expect(resolveWatchTarget({ pid: 777 }, log, { procRoot })).rejects.toMatchObject({ exitCode: 3, message: 'no process with pid 777: check the pid (e.g. pgrep -a nginx)' });
    setChildren(500, []);
    gone(501);
    gone(502);
    await expect(resolveWatchTarget({ pid: 500 }, log, { procRoot })).rejects.toMatchObject({ exitCode: 3, message: 'nginx master 500 has no worker processes' });
  });

  it('a container: the workers of its masters, the name in file names; gone when its masters are', async () => {
    const t = await resolveWatchTarget({ container: 'apisix' }, log, { procRoot, docker: { socketPath } });
    expect([t.tag, t.label, t.profileArgs]).toEqual(['container-apisix', 'container apisix', ['--container', 'apisix']]);
    expect(t.current()).toEqual([501, 502]);
    writeProc(503, 500, 'nginx: worker process', [0, 0], [503, 9]);
    setChildren(500, [501, 502, 503]);
    expect(t.current()).toEqual([501, 502, 503]);
    setChildren(500, []);
    expect(t.current()).toEqual([]);
    gone(500);
    expect(t.current()).toBeNull();
  });
});
