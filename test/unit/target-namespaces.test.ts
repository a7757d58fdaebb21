import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  hostPidForContainerPid,
  inOtherPidNamespace,
  parseNamespaceLink,
  parseNSpid,
  pidAtLevel,
  readNamespace,
  readNSpid,
} from '../../src/target/namespaces.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/cgroup/${name}`, import.meta.url), 'utf8');

describe('parseNSpid', () => {
  it('reads the host pid and the pid inside the container', () => {
    expect(parseNSpid(fixture('nginx-worker-in-container.status'))).toEqual([19908, 7]);
  });

  it('reads one field for a process of our own namespace', () => {
    const nspid = parseNSpid(fixture('host-process.status'));
    expect(nspid).toHaveLength(1);
    expect(nspid?.[0]).toBe(Number(/^Pid:\s*(\d+)$/m.exec(fixture('host-process.status'))?.[1]));
  });

  it('reads nested namespaces, innermost last, and not NStgid or NSpgid', () => {
    expect(parseNSpid(fixture('nested-dind-worker.status'))).toEqual([30417, 212, 7]);
  });

  it('returns null without a (valid) NSpid line', () => {
    expect(parseNSpid('Name:\tx\nPid:\t5\n')).toBeNull();
    expect(parseNSpid('NSpid:\t\n')).toBeNull();
    expect(parseNSpid('NSpid:\t5\tx\n')).toBeNull();
  });
});

describe('hostPidForContainerPid', () => {
  const procs = [
    { pid: 19877, nspid: [19877, 1] },
    { pid: 19908, nspid: [19908, 7] },
    { pid: 30417, nspid: [30417, 212, 7] }, // nested: pid 7 of an inner namespace
    { pid: 30001, nspid: null },
  ];

  it('maps by the innermost pid by default, preferring the shallowest match', () => {
    expect(hostPidForContainerPid(1, procs)).toBe(19877);
    expect(hostPidForContainerPid(7, procs)).toBe(19908);
    expect(hostPidForContainerPid(8, procs)).toBeNull();
  });

  it('maps at a given namespace depth', () => {
    expect(hostPidForContainerPid(212, procs, 1)).toBe(30417);
    expect(hostPidForContainerPid(7, procs, 1)).toBe(19908);
    expect(hostPidForContainerPid(7, procs, 2)).toBe(30417);
    expect(hostPidForContainerPid(19908, procs, 0)).toBe(19908);
  });

  it('pidAtLevel', () => {
    expect(pidAtLevel([5, 2, 1])).toBe(1);
    expect(pidAtLevel([5, 2, 1], 1)).toBe(2);
    expect(pidAtLevel([5], 1)).toBeUndefined();
  });
});

describe('namespace links', () => {
  it('parses ns links', () => {
    expect(parseNamespaceLink('pid:[4026531836]')).toEqual({ type: 'pid', inode: 4026531836 });
    expect(parseNamespaceLink('pid_for_children:[4026531836]\n')).toEqual({ type: 'pid_for_children', inode: 4026531836 });
    expect(parseNamespaceLink('nonsense')).toBeNull();
  });

  it('reads our own namespace and NSpid', () => {
    expect(parseNamespaceLink(readNamespace('self') ?? '')?.type).toBe('pid');
    expect(readNSpid(process.pid)?.[0]).toBe(process.pid);
    expect(inOtherPidNamespace(process.pid)).toBe(false);
    expect(inOtherPidNamespace(0x7ffffff0)).toBeNull();
    expect(readNSpid(0x7ffffff0)).toBeNull();
  });
});
