import { describe, expect, it } from 'vitest';
import { decodeProtoHeader, decodeStringLength, displayChunkName, luaFrameName } from '../../src/luajit/proto.js';
import { interpreterRange } from '../../src/luajit/detect.js';
import { loadOffsetTables } from '../../src/luajit/offset-tables.js';

const gc64 = loadOffsetTables().find((t) => t.package === 'luajit2' && t.mode === 'gc64')!;
const nogc64 = loadOffsetTables().find((t) => t.package === 'luajit2' && t.mode === 'nogc64')!;

/** A sparse fake address space for the memory readers. */
function fakeMemory(cells: Map<bigint, Buffer>) {
  return {
    read(addr: bigint, length: number): Buffer | null {
      for (const [base, buf] of cells) {
        if (addr >= base && addr + BigInt(length) <= base + BigInt(buf.length)) {
          const off = Number(addr - base);
          return buf.subarray(off, off + length);
        }
      }
      return null;
    },
  };
}

describe('GCproto and GCstr decoding', () => {
  it('reads chunkname, firstline and numline at the GC64 offsets', () => {
    const o = gc64.offsets;
    const buf = Buffer.alloc(o.pt_size);
    buf.writeBigUInt64LE(0x7f0000001000n, o.pt_chunkname);
    buf.writeInt32LE(42, o.pt_firstline);
    buf.writeInt32LE(7, o.pt_numline);
    expect(decodeProtoHeader(buf, o)).toEqual({ chunkname: 0x7f0000001000n, firstline: 42, numline: 7 });
  });

  it('reads 32-bit references in non-GC64 builds', () => {
    const o = nogc64.offsets;
    const buf = Buffer.alloc(o.pt_size);
    buf.writeUInt32LE(0x401000, o.pt_chunkname);
    buf.writeInt32LE(3, o.pt_firstline);
    expect(decodeProtoHeader(buf, o).chunkname).toBe(0x401000n);
    const str = Buffer.alloc(o.str_size);
    str.writeUInt32LE(11, o.str_len);
    expect(decodeStringLength(str, o)).toBe(11);
  });

  it('shows chunk names the way users know them', () => {
    expect(displayChunkName('@/usr/local/apisix/apisix/init.lua')).toBe('/usr/local/apisix/apisix/init.lua');
    expect(displayChunkName('=content_by_lua(nginx.conf:40)')).toBe('content_by_lua(nginx.conf:40)');
    expect(displayChunkName('return 1 + 1\nfoo')).toBe('[string "return 1 + 1"]');
    expect(luaFrameName('/app/work.lua', 12, 'heavy')).toBe('heavy (/app/work.lua:12)');
    expect(luaFrameName('/app/work.lua', 12)).toBe('(/app/work.lua:12)');
  });
});

describe('the interpreter in process memory', () => {
  const o = gc64.offsets;
  const G = 0x10000n;

  it('finds the interpreter from the dispatch table entries that point into the library text', () => {
    const dispatch = G - BigInt(o.GG_g) + BigInt(o.GG_dispatch);
    const table = Buffer.alloc(256 * 8);
    table.writeBigUInt64LE(0x5000n, 0);
    table.writeBigUInt64LE(0x5400n, 8);
    table.writeBigUInt64LE(0x1n, 16); // not code: ignored
    table.writeBigUInt64LE(0x5200n, 24);
    const mem = fakeMemory(new Map([[dispatch, table]]));
    expect(interpreterRange(mem, gc64, G, { start: 0x4000n, end: 0x9000n })).toEqual({ lo: 0x5000n, hi: 0x5800n });
    expect(interpreterRange(fakeMemory(new Map()), gc64, G, { start: 0x4000n, end: 0x9000n })).toBeNull();
  });
});
