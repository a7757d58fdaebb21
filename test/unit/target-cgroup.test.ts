import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  cgroupMentions,
  containerIdFromCgroup,
  containerIdFromCgroupPath,
  parseProcCgroup,
  processesInContainer,
  readProcCgroup,
  type CgroupProcess,
} from '../../src/target/cgroup.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/cgroup/${name}`, import.meta.url), 'utf8');

const REAL_ID = 'abdae8ea9cc3fec5db73bcd1d5caf2108991ef23443e43a601d4d9d7c0ac5c0c';
const V1_SYSTEMD_ID = '33bf693c69a8c16687e2b3ba5b49411e2df9688b054afde66db1e23ed2f7e1e6';
const V2_SYSTEMD_ID = '35f95d053f6256a15931ba759eaadd3d9b59d74aa47e730a1cd95832a717472e';
const V2_CGROUPFS_ID = 'd41254dfe5bf4ecd4b67439e8a881f95b3d7689ab8f188f6aa8bd4d02ecc5f6a';
const X = 'a'.repeat(64);
const Y = 'b'.repeat(64);

describe('parseProcCgroup', () => {
  it('parses v1 lines with controllers and the v2 line', () => {
    const lines = parseProcCgroup(fixture('v1-systemd.cgroup'));
    expect(lines).toHaveLength(13);
    expect(lines[0]).toEqual({ hierarchy: 12, controllers: ['pids'], path: `/system.slice/docker-${V1_SYSTEMD_ID}.scope` });
    expect(lines[2].controllers).toEqual(['net_cls', 'net_prio']);
    expect(lines[11].controllers).toEqual(['name=systemd']);
    expect(lines[12]).toEqual({ hierarchy: 0, controllers: [], path: '/' });
  });

  it('keeps colons inside the path, tolerates CRLF and skips junk', () => {
    expect(parseProcCgroup('0::/a:b/c\r\n\ngarbage\n3:cpu:relative\nx:cpu:/y\n')).toEqual([
      { hierarchy: 0, controllers: [], path: '/a:b/c' },
    ]);
  });
});

describe('containerIdFromCgroupPath', () => {
  it.each([
    ['cgroupfs v1/v2', `/docker/${X}`, X],
    ['systemd driver', `/system.slice/docker-${X}.scope`, X],
    ['systemd inside the container', `/system.slice/docker-${X}.scope/init.scope`, X],
    ['rootless docker', `/user.slice/user-1000.slice/user@1000.service/app.slice/docker-${X}.scope`, X],
    ['docker in docker (innermost wins)', `/docker/${X}/docker/${Y}`, Y],
    ['dind, systemd outside', `/system.slice/docker-${X}.scope/docker/${Y}`, Y],
    ['kubernetes cgroupfs', `/kubepods/besteffort/pod0f1e2d3c-aaaa-bbbb-cccc-0123456789ab/${X}`, X],
    ['kubernetes containerd systemd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-${X}.scope`, X],
    ['cri-o', `/kubepods.slice/crio-${X}.scope`, X],
    ['podman', `/machine.slice/libpod-${X}.scope/container`, X],
    ['seen from a sibling cgroup namespace', `/../docker-${X}.scope`, X],
    ['GitHub Actions job container', `/actions_job/${X}`, X],
  ])('%s', (_name, path, id) => {
    expect(containerIdFromCgroupPath(path)).toBe(id);
  });

  it.each([
    ['root', '/'],
    ['host session', '/user.slice/user-1000.slice/session-2.scope'],
    ['short hex', '/docker/abdae8ea9cc3'],
    ['uppercase hex', `/docker/${X.toUpperCase()}`],
    ['65 hex', `/docker/${X}a`],
    ['id inside a longer name', `/system.slice/foo-${X}.service`],
    ['cgroupns relative', '/../..'],
  ])('no id: %s', (_name, path) => {
    expect(containerIdFromCgroupPath(path)).toBeNull();
  });
});

describe('containerIdFromCgroup over fixtures', () => {
  it.each([
    ['v1-cgroupfs-hybrid.cgroup', REAL_ID],
    ['v1-systemd.cgroup', V1_SYSTEMD_ID],
    ['v2-systemd.cgroup', V2_SYSTEMD_ID],
    ['v2-cgroupfs.cgroup', V2_CGROUPFS_ID],
    ['v1-cgroupns-private.cgroup', null],
    ['v2-host-process.cgroup', null],
  ])('%s', (file, id) => {
    expect(containerIdFromCgroup(fixture(file))).toBe(id);
  });

  it('prefers the v2 line, then v1 lines in order', () => {
    expect(containerIdFromCgroup(`1:cpu:/docker/${X}\n0::/docker/${Y}\n`)).toBe(Y);
    expect(containerIdFromCgroup(`2:cpu:/\n1:name=systemd:/docker/${X}\n0::/\n`)).toBe(X);
  });

  it('cgroupMentions looks for the id anywhere in any path', () => {
    expect(cgroupMentions(fixture('v1-systemd.cgroup'), V1_SYSTEMD_ID)).toBe(true);
    expect(cgroupMentions(fixture('v1-systemd.cgroup'), V1_SYSTEMD_ID.toUpperCase())).toBe(true);
    expect(cgroupMentions(fixture('v1-systemd.cgroup'), REAL_ID)).toBe(false);
    expect(cgroupMentions(fixture('v1-systemd.cgroup'), '')).toBe(false);
  });
});

describe('processesInContainer', () => {
  const hostCg = '0::/user.slice/session-1.scope\n';
  const inCg = (id: string) => `0::/system.slice/docker-${id}.scope\n`;
  const p = (pid: number, ppid: number, cgroup: string | null): CgroupProcess => ({ pid, ppid, cgroup });

  it('matches by cgroup path, including exec-ed processes outside the init tree', () => {
    const procs = [
      p(1, 0, hostCg),
      p(900, 1, hostCg), // containerd-shim
      p(1000, 900, inCg(X)), // init: nginx master
      p(1001, 1000, inCg(X)), // worker
      p(1050, 900, inCg(X)), // docker exec: child of the shim
      p(2000, 900, inCg(Y)), // another container
      p(2001, 2000, inCg(Y)),
    ];
    expect(processesInContainer(X, 1000, procs).map((q) => q.pid)).toEqual([1000, 1001, 1050]);
    expect(processesInContainer(Y, 2000, procs).map((q) => q.pid)).toEqual([2000, 2001]);
  });

  it('falls back to the init pid and its descendants when paths are hidden (cgroupns)', () => {
    const ns = fixture('v1-cgroupns-private.cgroup');
    const procs = [p(1, 0, ns), p(10, 1, ns), p(1000, 10, ns), p(1001, 1000, ns), p(1002, 1000, null), p(1003, 1002, ns)];
    expect(processesInContainer(X, 1000, procs).map((q) => q.pid)).toEqual([1000, 1001, 1002, 1003]);
  });

  it('does not trust an init pid whose cgroup names another container', () => {
    const procs = [p(1000, 1, inCg(Y)), p(1001, 1000, inCg(Y))];
    expect(processesInContainer(X, 1000, procs)).toEqual([]);
  });

  it('is empty when the init pid is not visible and no path names the container', () => {
    expect(processesInContainer(X, 4242, [p(1, 0, hostCg)])).toEqual([]);
  });

  it('survives ppid cycles and returns the callers objects sorted by pid', () => {
    const a = { pid: 7, ppid: 5, cgroup: null, extra: 'a' };
    const b = { pid: 5, ppid: 7, cgroup: null, extra: 'b' };
    const out = processesInContainer(X, 7, [a, b]);
    expect(out).toEqual([b, a]);
  });
});

describe('readProcCgroup', () => {
  it('reads our own cgroup and returns null for a missing process', () => {
    expect(parseProcCgroup(readProcCgroup('self') ?? '').length).toBeGreaterThan(0);
    expect(readProcCgroup(0x7ffffff0)).toBeNull();
  });
});
