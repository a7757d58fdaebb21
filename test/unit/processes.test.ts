import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expandTarget, parseStat, type ProcessInfo, workersOfMaster } from '../../src/target/processes.js';
import { noSamplesText } from '../../src/commands/profile.js';

describe('parseStat', () => {
  it('reads pid, comm and ppid even when comm holds spaces and parentheses', () => {
    expect(parseStat('4242 (nginx: a (b)) S 4200 4242 4242 0 -1 4194560')).toMatchObject({ pid: 4242, comm: 'nginx: a (b)', ppid: 4200 });
  });
  it('rejects a line without a comm', () => {
    expect(() => parseStat('garbage')).toThrow(/malformed/);
  });
});

describe('expandTarget', () => {
  const p = (pid: number, ppid: number, cmdline: string): ProcessInfo => ({ pid, ppid, comm: 'nginx', cmdline });
  const all = [
    p(10, 1, 'nginx: master process nginx -p /tmp/x'),
    p(12, 10, 'nginx: worker process'),
    p(11, 10, 'nginx: worker process'),
    p(13, 10, 'nginx: cache manager process'),
    p(20, 1, 'nginx: master process /usr/sbin/nginx'),
    p(21, 20, 'nginx: worker process'),
  ];
  it('turns a master into its own workers, in pid order', () => {
    expect(expandTarget(all[0], all).map((x) => x.pid)).toEqual([11, 12]);
  });
  it('keeps a worker or any other process as itself', () => {
    expect(expandTarget(all[1], all).map((x) => x.pid)).toEqual([12]);
    expect(expandTarget(p(99, 1, 'luajit app.lua'), all).map((x) => x.pid)).toEqual([99]);
  });
});

describe('workersOfMaster', () => {
  const procRoot = mkdtempSync(join(tmpdir(), 'apisix-profile-procs-'));
  afterAll(() => rmSync(procRoot, { recursive: true, force: true }));
  const writeProc = (pid: number, ppid: number, cmdline: string) => {
    const d = join(procRoot, String(pid));
    mkdirSync(join(d, 'task', String(pid)), { recursive: true });
    writeFileSync(join(d, 'stat'), `${pid} (nginx) S ${ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0\n`);
    writeFileSync(join(d, 'cmdline'), cmdline.split(' ').join('\0') + '\0');
  };
  const setChildren = (pid: number, children: number[]) =>
    writeFileSync(join(procRoot, String(pid), 'task', String(pid), 'children'), children.map((c) => `${c} `).join(''));

  it('follows the children list: a new child counts once it is titled a worker, an exited one drops out', () => {
    writeProc(10, 1, 'nginx: master process nginx');
    writeProc(11, 10, 'nginx: worker process');
    // Just forked: still the master's title.
    writeProc(12, 10, 'nginx: master process nginx');
    writeProc(13, 10, 'nginx: cache manager process');
    setChildren(10, [11, 12, 13]);
    const workers = workersOfMaster(10, procRoot)!;
    expect(workers()).toEqual([11]);
    writeProc(12, 10, 'nginx: worker process');
    expect(workers()).toEqual([11, 12]);
    // nginx -s reload: 11 has exited, 14 is new; 15 is listed but already gone.
    rmSync(join(procRoot, '11'), { recursive: true });
    writeProc(14, 10, 'nginx: worker process');
    setChildren(10, [12, 13, 14, 15]);
    expect(workers()).toEqual([12, 14]);
  });

  it('scans every process where the children list is missing, and finds none once the master is gone', () => {
    writeProc(20, 1, 'nginx: master process nginx');
    writeProc(21, 20, 'nginx: worker process');
    writeProc(22, 1, 'nginx: worker process');
    const workers = workersOfMaster(20, procRoot)!;
    expect(workers()).toEqual([21]);
    rmSync(join(procRoot, '20'), { recursive: true });
    expect(workers()).toEqual([]);
  });

  it('is undefined for a process that is not an nginx master', () => {
    writeProc(30, 1, 'nginx: worker process');
    expect(workersOfMaster(30, procRoot)).toBeUndefined();
    expect(workersOfMaster(31, procRoot)).toBeUndefined();
  });
});

describe('CPU time from /proc/<pid>/stat', () => {
  it('adds utime and stime (fields 14 and 15), also when the name has spaces and parentheses', () => {
    const line = '4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 100 0 0 0 250 37 0 0 20 0 1 0 1234 0 0 18446744073709551615';
    expect(parseStat(line)).toMatchObject({ pid: 4242, comm: 'nginx: worker (x)', ppid: 4241, cpuTicks: 287 });
  });
});

describe('the line for a profile without samples', () => {
  it('says idle when the target hardly ran, and points at doctor when it ran', () => {
    expect(noSamplesText(20, [7])).toMatch(/is it idle\?/);
    expect(noSamplesText(2500, [7])).toBe('no samples, though the target ran 2500 ms on a CPU during the profile: the sampling events did not fire for it; run `apisix-profile doctor --pid 7`');
  });
});
