import { readFileSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findMapping, isExecutable, isFileBacked, parseProcMaps, readProcMaps } from '../../src/target/proc-maps.js';

const fixture = readFileSync(new URL('../../fixtures/maps/nginx-worker.maps', import.meta.url), 'utf8');

describe('parseProcMaps', () => {
  const maps = parseProcMaps(fixture);

  it('parses every line of a real nginx worker maps file', () => {
    expect(maps).toHaveLength(fixture.trim().split('\n').length);
    expect(maps[0]).toEqual({
      start: 0x55ce676fd000n,
      end: 0x55ce67720000n,
      perms: 'r--p',
      offset: 0n,
      dev: 'fe:00',
      inode: 15884292,
      path: '/usr/sbin/nginx',
      deleted: false,
    });
  });

  it('keeps mappings sorted and non-overlapping', () => {
    for (let i = 1; i < maps.length; i++) {
      expect(maps[i - 1].end <= maps[i].start).toBe(true);
    }
  });

  it('parses file offsets and executable mappings', () => {
    const lj = maps.filter((m) => m.path.endsWith('libluajit-5.1.so.2.1.0'));
    expect(lj).toHaveLength(5);
    const text = lj.filter(isExecutable);
    expect(text).toHaveLength(1);
    expect(text[0].start).toBe(0x7ff48eea2000n);
    expect(text[0].offset).toBe(0x9000n);
    expect(text[0].perms).toBe('r-xp');
    expect(isFileBacked(text[0])).toBe(true);
  });

  it('keeps anonymous and pseudo mappings', () => {
    const anon = maps.find((m) => m.start === 0x55ce67832000n)!;
    expect(anon.path).toBe('');
    expect(anon.inode).toBe(0);
    expect(isFileBacked(anon)).toBe(false);
    const paths = new Set(maps.map((m) => m.path));
    for (const p of ['[heap]', '[stack]', '[vdso]', '[vvar]', '[vsyscall]']) expect(paths.has(p)).toBe(true);
    const vdso = maps.find((m) => m.path === '[vdso]')!;
    expect(isExecutable(vdso)).toBe(true);
    expect(isFileBacked(vdso)).toBe(false);
  });

  it('handles addresses above 2^63 ([vsyscall])', () => {
    const vs = maps[maps.length - 1];
    expect(vs.path).toBe('[vsyscall]');
    expect(vs.start).toBe(0xffffffffff600000n);
    expect(vs.perms).toBe('--xp');
  });

  it('strips the (deleted) suffix into deleted', () => {
    const z = maps.find((m) => m.path === '/dev/zero')!;
    expect(z.deleted).toBe(true);
    expect(z.perms).toBe('rw-s');
    expect(maps.filter((m) => m.deleted)).toHaveLength(1);
  });

  it('handles paths with spaces, deleted binaries, CRLF and unsorted input', () => {
    const text = [
      '7f0000002000-7f0000003000 r-xp 00001000 08:01 42   /opt/my app/bin/ngx (deleted)\r',
      '',
      '7f0000000000-7f0000001000 r--p 00000000 08:01 42   /opt/my app/bin/ngx (deleted)',
      '7f0000004000-7f0000005000 rw-p 00000000 00:00 0',
      '7f0000006000-7f0000007000 r-xp 00000000 00:01 77                         /memfd:jit (deleted)',
    ].join('\n');
    const m = parseProcMaps(text);
    expect(m.map((x) => x.start)).toEqual([0x7f0000000000n, 0x7f0000002000n, 0x7f0000004000n, 0x7f0000006000n]);
    expect(m[1].path).toBe('/opt/my app/bin/ngx');
    expect(m[1].deleted).toBe(true);
    expect(m[1].offset).toBe(0x1000n);
    expect(m[2].path).toBe('');
    expect(m[2].deleted).toBe(false);
    expect(m[3].path).toBe('/memfd:jit');
    expect(m[3].deleted).toBe(true);
  });

  it('rejects text that is not a maps file', () => {
    expect(() => parseProcMaps('hello world\n')).toThrow(/line 1/);
  });

  it('returns nothing for empty input', () => {
    expect(parseProcMaps('')).toEqual([]);
  });
});

describe('findMapping', () => {
  const maps = parseProcMaps(fixture);

  it('finds the mapping containing an address (start inclusive, end exclusive)', () => {
    expect(findMapping(maps, 0x7ff48eea2000n)?.path).toMatch(/libluajit/);
    expect(findMapping(maps, 0x7ff48eea2000n)?.perms).toBe('r-xp');
    expect(findMapping(maps, 0x7ff48ef0dfffn)?.perms).toBe('r-xp');
    expect(findMapping(maps, 0x7ff48ef0e000n)?.perms).toBe('r--p');
    expect(findMapping(maps, 0x55ce67720000n + 0x1234n)?.path).toBe('/usr/sbin/nginx');
    expect(findMapping(maps, 0xffffffffff600010n)?.path).toBe('[vsyscall]');
  });

  it('misses addresses in gaps and outside all mappings', () => {
    expect(findMapping(maps, 0n)).toBeUndefined();
    expect(findMapping(maps, 0x55ce67851000n)).toBeUndefined(); // between bss and heap
    expect(findMapping(maps, 0x7ffd893ae000n)).toBeUndefined(); // just after [stack]
    expect(findMapping([], 0x1000n)).toBeUndefined();
  });

  it('agrees with a linear scan for every mapping boundary', () => {
    const probes: bigint[] = [];
    for (const m of maps) probes.push(m.start - 1n, m.start, m.end - 1n, m.end);
    for (const a of probes) {
      expect(findMapping(maps, a)).toBe(maps.find((m) => a >= m.start && a < m.end));
    }
  });
});

describe('readProcMaps', () => {
  it('reads the maps of this process', () => {
    const maps = readProcMaps(process.pid);
    expect(maps.length).toBeGreaterThan(10);
    expect(maps.some((m) => isExecutable(m) && m.path === realpathSync(process.execPath))).toBe(true);
  });
});
