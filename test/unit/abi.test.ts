// bpf/profiler.h is the only kernel/user ABI; src/native/abi.ts mirrors it.
// These checks read the header itself so the two cannot drift apart.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as abi from '../../src/native/abi.js';

const header = readFileSync(join(import.meta.dirname, '../../bpf/profiler.h'), 'utf8');

function define(name: string): number {
  const m = header.match(new RegExp(`#define ${name} (\\d+)`));
  if (!m) throw new Error(`profiler.h defines no ${name}`);
  return Number(m[1]);
}

function structFields(name: string): string[] {
  const body = header.match(new RegExp(`struct ${name} \\{([^}]*)\\};`));
  if (!body) throw new Error(`profiler.h has no struct ${name}`);
  return [...body[1].matchAll(/__[su]\d+ (\w+)/g)].map((m) => m[1]);
}

function enumValues(name: string): string[] {
  const body = header.match(new RegExp(`enum ${name} \\{([^}]*)\\};`));
  if (!body) throw new Error(`profiler.h has no enum ${name}`);
  return [...body[1].matchAll(/^\s*(\w+)/gm)].map((m) => m[1]);
}

describe('ABI mirror of bpf/profiler.h', () => {
  it('has the same limits', () => {
    expect(abi.MAX_KERNEL_FRAMES).toBe(define('MAX_KERNEL_FRAMES'));
    expect(abi.MAX_USER_FRAMES).toBe(define('MAX_USER_FRAMES'));
    expect(header).toContain(`#define LUA_POS_FROM_C (1U << 31)`);
    expect(abi.LUA_POS_FROM_C).toBe(2 ** 31);
    expect(abi.MAX_LUA_FRAMES).toBe(define('MAX_LUA_FRAMES'));
    expect(abi.MAX_LJ_TABLES).toBe(define('MAX_LJ_TABLES'));
    expect(abi.MAX_PROCS).toBe(define('MAX_PROCS'));
    expect(abi.KNOWN_STACKS_MAX).toBe(define('MAX_KNOWN_STACKS'));
    expect(abi.MAX_OFFCPU_THREADS).toBe(define('MAX_OFFCPU_THREADS'));
  });

  it('lists the lj_offsets fields in header order', () => {
    expect([...abi.LJ_OFFSET_FIELDS]).toEqual(structFields('lj_offsets'));
  });

  it('lays out sample_key and proc_state as the header does', () => {
    expect(structFields('sample_key')).toEqual(['pid', 'flags', 'vmstate', 'n_kernel', 'n_user', 'n_lua', 'pad0', 'label', 'kernel', 'user', 'lua', 'lua_pos']);
    expect(abi.SAMPLE_KEY_SIZE).toBe(24 + 8 * (define('MAX_KERNEL_FRAMES') + define('MAX_USER_FRAMES') + define('MAX_LUA_FRAMES')) + 4 * define('MAX_LUA_FRAMES'));
    expect(structFields('proc_state')).toEqual(['L', 'dispatch', 'g', 'vm_lo', 'vm_hi', 'table', 'uprobe_hits', 'stack_words']);
    expect(abi.STACK_SNAPSHOT_WORDS).toBe(define('STACK_SNAPSHOT_WORDS'));
    expect(header).toContain(`#define PROC_NO_LUAJIT 0x${abi.PROC_NO_LUAJIT.toString(16)}U`);
    expect(abi.PROC_STATE_SIZE).toBe(48 + 8 * define('STACK_SNAPSHOT_WORDS'));
    expect(structFields('profiler_config')).toEqual(['kernel_stacks', 'leaf_pc', 'unwind_cfi', 'uri_labels']);
    expect(structFields('exec_mapping')).toEqual(['start', 'end', 'bias', 'row_first', 'row_count']);
    expect(structFields('proc_mappings')).toEqual(['n', 'generation']);
    expect(abi.PROC_MAPPINGS_SIZE).toBe(8 + 32 * define('MAX_MAPPINGS'));
    expect(structFields('unwind_row')).toEqual(['pc', 'cfa_offset', 'kind', 'ra_offset', 'rbp_offset']);
    // u64 pc, s32 cfa_offset, u8 kind, s8 ra_offset, s16 rbp_offset
    expect(header).toMatch(/__u64 pc;[^}]*__s32 cfa_offset;[^}]*__u8 kind;[^}]*__s8 ra_offset;[^}]*__s16 rbp_offset;/);
    expect(abi.UNWIND_ROW_SIZE).toBe(8 + 4 + 1 + 1 + 2);
    expect(enumValues('unwind_kind').map((n) => n.replace('UNWIND_', '').toLowerCase())).toEqual(abi.KIND_BY_CODE);
    for (const [kind, code] of Object.entries(abi.UNWIND_KIND_CODE)) expect(abi.KIND_BY_CODE[code]).toBe(kind);
    expect(abi.MAX_UNWIND_ROWS).toBe(1 << 19);
    expect(header).toContain('#define MAX_UNWIND_ROWS (1 << 19)');
    expect(abi.MAX_MAPPINGS).toBe(define('MAX_MAPPINGS'));
  });

  it('numbers the stats and the frame kinds the same way', () => {
    expect(enumValues('stat_index')).toEqual(['STAT_SAMPLES', 'STAT_LOST_MAP_FULL', 'STAT_USER_STACK_FAIL', 'STAT_LUA_BAD_READ', 'STAT_UPROBE_HITS', 'STAT_LOST_NO_MEMORY', 'STAT_SWITCHES_BLOCKED', 'STAT_SWITCHES_PREEMPTED', 'STAT_PREEMPTED_NS', 'STAT_OFFCPU_LOST', 'STAT_OFFCPU_INTERRUPTED', 'STAT_OFFCPU_IDLE_REUSED', 'STAT__MAX']);
    expect(Object.values(abi.StatIndex)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(abi.STAT_COUNT).toBe(12);
    expect(header).toContain('LUA_FRAME_LUA = 1,');
    expect(header).toContain('LUA_FRAME_C = 2,');
    expect(header).toContain('LUA_FRAME_FAST = 3,');
  });

  it('round-trips proc_state and decodes a sample key', () => {
    const state = { L: 0x7e00n, dispatch: 0x7d00n, g: 0x7f00n, vmLo: 1n, vmHi: 2n, table: 3, uprobeHits: 4, stackWords: Array.from({ length: abi.STACK_SNAPSHOT_WORDS }, (_, i) => BigInt(i)) };
    expect(abi.decodeProcState(abi.encodeProcState(state))).toEqual(state);
    const buf = Buffer.alloc(abi.SAMPLE_KEY_SIZE);
    buf.writeUInt32LE(99, 0);
    buf.writeInt32LE(-3, 8);
    buf.writeUInt16LE(1, 12);
    buf.writeUInt16LE(2, 14);
    buf.writeUInt16LE(1, 16);
    buf.writeBigUInt64LE(0xffffffff81000000n, 24);
    buf.writeBigUInt64LE(0x401000n, 24 + 8 * abi.MAX_KERNEL_FRAMES);
    const key = abi.decodeSampleKey(buf);
    expect(key).toMatchObject({ pid: 99, vmstate: -3, kernel: [0xffffffff81000000n], lua: [0n] });
    expect(key.user).toEqual([0x401000n, 0n]);
    expect(() => abi.decodeSampleKey(Buffer.alloc(8))).toThrow(/expected/);
  });

  it('ignores frame slots past the counts: the kernel leaves earlier samples there', () => {
    const buf = Buffer.alloc(abi.SAMPLE_KEY_SIZE, 0xab);
    buf.writeUInt16LE(0, 12);
    buf.writeUInt16LE(1, 14);
    buf.writeUInt16LE(0, 16);
    buf.writeBigUInt64LE(0x401000n, 24 + 8 * abi.MAX_KERNEL_FRAMES);
    const key = abi.decodeSampleKey(buf);
    expect(key.kernel).toEqual([]);
    expect(key.user).toEqual([0x401000n]);
    expect(key.lua).toEqual([]);
    expect(key.luaPos).toEqual([]);
  });

  it('reads the same key out of a buffer that does not start on an 8-byte boundary', () => {
    const backing = Buffer.alloc(abi.SAMPLE_KEY_SIZE + 3);
    const buf = backing.subarray(3);
    buf.writeUInt16LE(2, 14);
    buf.writeUInt16LE(1, 16);
    buf.writeBigUInt64LE(0x7f0011223344n, 24 + 8 * abi.MAX_KERNEL_FRAMES);
    buf.writeBigUInt64LE(0x401000n, 24 + 8 * abi.MAX_KERNEL_FRAMES + 8);
    buf.writeBigUInt64LE(0x2000000000abcdefn, 24 + 8 * (abi.MAX_KERNEL_FRAMES + abi.MAX_USER_FRAMES));
    const key = abi.decodeSampleKey(buf);
    expect(key.user).toEqual([0x7f0011223344n, 0x401000n]);
    expect(key.lua).toEqual([0x2000000000abcdefn]);
    expect(abi.decodeSampleKey(Buffer.from(buf))).toEqual(key);
  });

  it('writes the mapping generation the kernel keys its row cache by', () => {
    const buf = abi.encodeProcMappings([{ start: 0x1000n, end: 0x2000n, bias: 0n, rowFirst: 5, rowCount: 6 }], 7);
    expect(buf.readUInt32LE(0)).toBe(1);
    expect(buf.readUInt32LE(4)).toBe(7);
    expect(buf.readUInt32LE(8 + 24)).toBe(5);
  });

  it('sizes the known-stacks limit as the BPF object does', () => {
    const maps = readFileSync(join(import.meta.dirname, '../../bpf/maps.bpf.h'), 'utf8');
    expect(maps).toMatch(/__uint\(max_entries, MAX_KNOWN_STACKS\);[^}]*\} known SEC/);
    expect(abi.KNOWN_STACKS_MAX).toBe(define('MAX_KNOWN_STACKS'));
    expect(abi.MAX_OFFCPU_THREADS).toBe(define('MAX_OFFCPU_THREADS'));
  });

  it('places a pid in the target_pids bitmap as the switch program reads it', () => {
    expect(header).toContain(`#define TARGET_PID_WORDS ${abi.TARGET_PID_WORDS}\n`);
    expect(abi.targetPidBit(0)).toEqual({ word: 0, mask: 1n });
    expect(abi.targetPidBit(130)).toEqual({ word: 2, mask: 1n << 2n });
    // PID_MAX_LIMIT - 1, the largest pid a 64-bit kernel hands out, has a word.
    expect(abi.targetPidBit(4_194_303)).toEqual({ word: abi.TARGET_PID_WORDS - 1, mask: 1n << 63n });
  });

  it('lays out offcpu_thread and the off-CPU flag as the header does', () => {
    expect(header).toMatch(/struct offcpu_thread \{\s*__u64 start_ns;[^}]*__u64 id;[^}]*struct offcpu_idle_site idle;[^}]*__u64 idle_ns;[^}]*\};/);
    expect(structFields('offcpu_idle_site')).toEqual(['ip', 'sp', 'bp', 'id']);
    expect(abi.OFFCPU_THREAD_SIZE).toBe(16 + 4 * 8 + 8);
    expect(header).toContain(`SAMPLE_OFF_CPU = 1 << ${Math.log2(abi.SampleFlags.OffCpu)},`);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(77, 0);
    const value = Buffer.alloc(abi.OFFCPU_THREAD_SIZE);
    value.writeBigUInt64LE(123n, 0);
    value.writeBigUInt64LE(0xabcn, 8);
    value.writeBigUInt64LE(0xdefn, 40);
    value.writeBigUInt64LE(999n, 48);
    const t = abi.decodeOffCpuThread(key, value);
    expect(t.tid).toBe(77);
    expect(t.startNs).toBe(123n);
    expect(t.id.readBigUInt64LE(0)).toBe(0xabcn);
    expect(t.idleId.readBigUInt64LE(0)).toBe(0xdefn);
    expect(t.idleNs).toBe(999n);
    const seeded = abi.decodeOffCpuThread(key, abi.encodeOffCpuThread(5n, 6n));
    expect([seeded.startNs, seeded.id.readBigUInt64LE(0), seeded.idleNs]).toEqual([5n, 6n, 0n]);
  });
  it('lays out the --label uri structs as the header does', () => {
    expect(structFields('request_uri_state')).toEqual(['request', 'L_exdata', 'uri_offset']);
    expect(structFields('uri_label')).toEqual(['len', 'bytes']);
    expect(header).toContain(`#define URI_LABEL_BYTES ${abi.URI_LABEL_BYTES} `);
    expect(header).toContain(`#define MAX_URI_LABELS ${abi.MAX_URI_LABELS} `);
    const state = { request: 0x7f00_1234_5678n, exdataOffset: -1, uriOffset: 1000 };
    expect(abi.decodeRequestUriState(abi.encodeRequestUriState(state))).toEqual(state);
    const label = Buffer.alloc(4 + abi.URI_LABEL_BYTES, 0x41);
    label.writeUInt32LE(3, 0);
    label.write('/ab', 4, 'latin1');
    expect(abi.decodeUriLabel(label)).toBe('/ab');
    expect(abi.encodeConfig({ kernelStacks: false, leafPc: false, unwindCfi: false, uriLabels: true }).readUInt32LE(12)).toBe(1);
  });
});
