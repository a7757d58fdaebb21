// The native addon against the real kernel: rodata, maps, a per-CPU perf
// event program and a pid-filtered uprobe on a child process. Needs root.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { type NativeSession, openNativeSession } from '../../src/native/addon.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SMOKE_SOURCE = join(ROOT, 'fixtures/bpf/addon_smoke.bpf.c');
const PROG_NAMES = ['smoke_tick', 'smoke_uprobe'];
const MAGIC = 0x5eed_cafe;

// A target for the uprobe: calls an exported function in a loop.
const CHILD_SOURCE = `
#include <unistd.h>
volatile unsigned long smoke_calls;
__attribute__((noinline)) void smoke_target(int i) {
  smoke_calls += i;
  __asm__ volatile("" ::: "memory");
}
int main(void) {
  for (int i = 0;; i++) {
    smoke_target(i);
    usleep(1000);
  }
}
`;

let tmp = '';
let smokeObject = '';
let childBinary = '';
const sessions: NativeSession[] = [];
const children: ChildProcess[] = [];

function open(): NativeSession {
  const session = openNativeSession(smokeObject);
  sessions.push(session);
  return session;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

function openLoaded(): NativeSession {
  const session = open();
  session.setRodata(u32(MAGIC));
  session.load();
  return session;
}

function burnCpu(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x = (x * 31 + 7) % 1_000_003;
  expect(x).toBeGreaterThanOrEqual(0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** File offset of an exported function, as uprobes want it: vaddr mapped through its PT_LOAD segment. */
function fileOffsetOf(binary: string, symbol: string): number {
  const line = execFileSync('nm', ['-D', '--defined-only', binary], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.endsWith(` ${symbol}`));
  if (!line) throw new Error(`${symbol} not found in ${binary}`);
  const vaddr = BigInt(`0x${line.split(' ')[0]}`);
  const elf = readFileSync(binary);
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== 1 /* PT_LOAD */) continue;
    const offset = elf.readBigUInt64LE(ph + 8);
    const segVaddr = elf.readBigUInt64LE(ph + 16);
    const filesz = elf.readBigUInt64LE(ph + 32);
    if (vaddr >= segVaddr && vaddr < segVaddr + filesz) return Number(vaddr - segVaddr + offset);
  }
  throw new Error(`${symbol} at 0x${vaddr.toString(16)} is in no PT_LOAD segment of ${binary}`);
}

function bpftoolJson<T>(...args: string[]): T {
  return JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
}

/** Ids of loaded programs named like ours. */
function smokeProgIds(): Set<number> {
  const progs = bpftoolJson<Array<{ id: number; name?: string }>>('prog', 'show');
  return new Set(progs.filter((p) => PROG_NAMES.includes(p.name ?? '')).map((p) => p.id));
}

function linksOf(progIds: Set<number>): Array<{ id: number; prog_id: number }> {
  return bpftoolJson<Array<{ id: number; prog_id: number }>>('link', 'show').filter((l) =>
    progIds.has(l.prog_id),
  );
}

describe('native addon (libbpf session)', () => {
  beforeAll(() => {
    if (process.getuid?.() !== 0) {
      throw new Error(
        'addon integration tests need root (BPF load, perf events, uprobes): run them as root, ' +
          'e.g. sudo npx vitest run test/integration/addon.test.ts',
      );
    }
    tmp = mkdtempSync(join(tmpdir(), 'apisix-profile-addon-'));
    smokeObject = join(tmp, 'addon_smoke.bpf.o');
    const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
    execFileSync('clang', [
      '-O2', '-g', '-target', 'bpf',
      '-I', join(ROOT, 'build/libbpf/include'),
      '-I', `/usr/include/${multiarch}`,
      '-c', SMOKE_SOURCE, '-o', smokeObject,
    ]);
    writeFileSync(join(tmp, 'child.c'), CHILD_SOURCE);
    childBinary = join(tmp, 'child');
    execFileSync('gcc', ['-O1', '-rdynamic', '-o', childBinary, join(tmp, 'child.c')]);
  });

  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('throws Errors with an errno code for native failures', () => {
    expect(() => openNativeSession(join(tmp, 'missing.bpf.o'))).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('missing.bpf.o') }),
    );
    const session = openLoaded();
    expect(() => session.attachUprobe('smoke_uprobe', process.pid, join(tmp, 'nope'), 0x1234)).toThrow(
      expect.objectContaining({
        code: 'ENOENT',
        message: expect.stringMatching(/^attach uprobe smoke_uprobe offset 0x1234 in .*nope.*: No such file/),
      }),
    );
    expect(() => session.mapLookup('no_such_map', u32(0))).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(() => session.setRodata(u32(1))).toThrow(expect.objectContaining({ code: 'EBUSY' }));
  });

  it('rejects a .rodata buffer of the wrong size, naming both sizes', () => {
    const session = open();
    expect(() => session.setRodata(Buffer.alloc(8))).toThrow(RangeError);
    expect(() => session.setRodata(Buffer.alloc(8))).toThrow(/is 4 bytes, buffer is 8 bytes/);
    session.setRodata(u32(MAGIC));
  });

  it('loads and counts samples from per-CPU perf events at 99 Hz', () => {
    const session = openLoaded();
    const cpus = session.attachPerfEvent('smoke_tick', 99);
    expect(cpus.length).toBeGreaterThan(0);
    burnCpu(500);
    const samples = session.mapLookup('smoke_counts', u32(0));
    const magic = session.mapLookup('smoke_counts', u32(1));
    expect(samples?.readBigUInt64LE()).toBeGreaterThan(0n);
    expect(magic?.readBigUInt64LE()).toBe(BigInt(MAGIC));
  });

  it('updates, looks up, lists, deletes and clears map entries', () => {
    const session = openLoaded();
    // Hash map.
    expect(session.mapLookup('smoke_tgids', u32(42))).toBeNull();
    session.mapUpdate('smoke_tgids', u32(42), u64(7n));
    session.mapUpdate('smoke_tgids', u32(43), u64(8n));
    expect(session.mapLookup('smoke_tgids', u32(42))).toEqual(u64(7n));
    const entries = session.mapEntries('smoke_tgids').map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()]);
    expect(entries.sort()).toEqual([[42, 7n], [43, 8n]]);
    expect(session.mapDelete('smoke_tgids', u32(42))).toBe(true);
    expect(session.mapDelete('smoke_tgids', u32(42))).toBe(false);
    expect(session.mapLookup('smoke_tgids', u32(42))).toBeNull();
    for (let i = 0; i < 20; i++) session.mapUpdate('smoke_tgids', u32(100 + i), u64(BigInt(i)));
    session.mapClear('smoke_tgids');
    expect(session.mapEntries('smoke_tgids')).toEqual([]);
    expect(() => session.mapUpdate('smoke_tgids', Buffer.alloc(8), u64(1n))).toThrow(RangeError);
    expect(() => session.mapUpdate('smoke_tgids', u32(1), u32(1))).toThrow(RangeError);
    // Array map: fixed keys, cleared by zeroing.
    session.mapUpdate('smoke_counts', u32(2), u64(99n));
    expect(session.mapEntries('smoke_counts')).toHaveLength(4);
    session.mapClear('smoke_counts');
    expect(session.mapLookup('smoke_counts', u32(2))).toEqual(u64(0n));
    expect(session.mapEntries('smoke_counts')).toHaveLength(4);
  });

  it('records the tgid of a uprobed child process, and stops after detach', async () => {
    const session = openLoaded();
    const child = spawn(childBinary, [], { stdio: 'ignore' });
    children.push(child);
    const pid = child.pid;
    if (pid === undefined) throw new Error('could not spawn the uprobe target');
    const offset = fileOffsetOf(childBinary, 'smoke_target');
    const link = session.attachUprobe('smoke_uprobe', pid, childBinary, offset);

    let hits: Buffer | null = null;
    for (let i = 0; i < 100 && !hits; i++) {
      await sleep(20);
      hits = session.mapLookup('smoke_tgids', u32(pid));
    }
    expect(hits?.readBigUInt64LE()).toBeGreaterThan(0n);
    expect(session.mapLookup('smoke_tgids', u32(process.pid))).toBeNull();

    session.detach(link);
    await sleep(50);
    const before = session.mapLookup('smoke_tgids', u32(pid))?.readBigUInt64LE();
    await sleep(100);
    expect(session.mapLookup('smoke_tgids', u32(pid))?.readBigUInt64LE()).toBe(before);
    expect(() => session.detach(link)).toThrow(RangeError);
  });

  it('close() removes every link and perf event, and may be called twice', async () => {
    const before = smokeProgIds();
    const session = openLoaded();
    const ours = new Set([...smokeProgIds()].filter((id) => !before.has(id)));
    expect(ours.size).toBe(2);

    const child = spawn(childBinary, [], { stdio: 'ignore' });
    children.push(child);
    const cpus = session.attachPerfEvent('smoke_tick', 99);
    session.attachUprobe('smoke_uprobe', child.pid ?? -1, childBinary, fileOffsetOf(childBinary, 'smoke_target'));
    expect(linksOf(ours)).toHaveLength(cpus.length + 1);

    session.close();
    session.close();
    expect(linksOf(ours)).toEqual([]);
    expect([...smokeProgIds()].filter((id) => ours.has(id))).toEqual([]);
    expect(() => session.mapLookup('smoke_counts', u32(0))).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
