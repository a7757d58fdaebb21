import { describe, expect, it } from 'vitest';
import { expandTarget, parseStat, type ProcessInfo } from '../../src/target/processes.js';

describe('parseStat', () => {
  it('reads pid, comm and ppid even when comm holds spaces and parentheses', () => {
    expect(parseStat('4242 (nginx: a (b)) S 4200 4242 4242 0 -1 4194560')).toEqual({ pid: 4242, comm: 'nginx: a (b)', ppid: 4200 });
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
