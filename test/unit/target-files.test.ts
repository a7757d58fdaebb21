// Opening a target's mapped files: /proc/<pid>/root while the path holds the
// file, /proc/<pid>/map_files when it was deleted or replaced.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mapFilesPath, targetFilePath } from '../../src/target/target-files.js';

describe('targetFilePath', () => {
  const procRoot = mkdtempSync(join(tmpdir(), 'apisix-profile-tfiles-'));
  afterAll(() => rmSync(procRoot, { recursive: true, force: true }));
  const lib = { path: '/usr/lib/libluajit.so', start: 0x7f5a692c5000n, end: 0x7f5a69331000n, deleted: false };

  mkdirSync(join(procRoot, '42/root/usr/lib'), { recursive: true });
  writeFileSync(join(procRoot, '42/root/usr/lib/libluajit.so'), 'elf');
  mkdirSync(join(procRoot, '42/map_files'), { recursive: true });
  writeFileSync(join(procRoot, '42/map_files/7f5a692c5000-7f5a69331000'), 'elf');

  it("names a mapping's map_files entry as the kernel does", () => {
    expect(mapFilesPath(42, lib)).toBe('/proc/42/map_files/7f5a692c5000-7f5a69331000');
  });

  it('reads through the process root while the path holds the mapped file', () => {
    expect(targetFilePath(42, lib, procRoot)).toBe(`${procRoot}/42/root/usr/lib/libluajit.so`);
  });

  it('reads through map_files when the file was deleted or is missing from the root', () => {
    expect(targetFilePath(42, { ...lib, deleted: true }, procRoot)).toBe(`${procRoot}/42/map_files/7f5a692c5000-7f5a69331000`);
    expect(targetFilePath(42, { ...lib, path: '/gone.so' }, procRoot)).toBe(`${procRoot}/42/map_files/7f5a692c5000-7f5a69331000`);
  });

  it('falls back to the root path when neither can be opened', () => {
    expect(targetFilePath(42, { ...lib, path: '/gone.so', start: 0x1000n, end: 0x2000n }, procRoot)).toBe(`${procRoot}/42/root/gone.so`);
  });
});
