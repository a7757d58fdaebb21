// Names the frames of one sampled process: native user addresses through
// its mapped ELF files, Lua frames through its memory, kernel addresses
// through kallsyms. Caches everything; reads a process's maps again only
// when an address falls outside what it knew.
import { basename } from 'node:path';
import type { FrameResolvers, UserFrame } from '../profile/assemble.js';
import { fastFunctionName, type LuajitTable } from '../luajit/offset-tables.js';
import { decodeProtoHeader, decodeStringLength, displayChunkName, luaFrameName } from '../luajit/proto.js';
import { LuaFrameKind, luaFrameKind, luaFramePayload } from '../native/abi.js';
import { findMapping, isExecutable, type Mapping, readProcMaps } from '../target/proc-maps.js';
import type { MemoryReader } from '../target/process-memory.js';
import { loadElfObject, symbolizeAddress } from './elf-cache.js';
import { looksLikeReturnAddress } from './frame-pointers.js';
import { type KernelSymbols, lookupKernel } from './kallsyms.js';
import { hostPathOf } from '../luajit/detect.js';

export interface ProcessContext {
  pid: number;
  maps: Mapping[];
  mem: MemoryReader | null;
  table: LuajitTable | null;
  luajitPath: string | null;
  /** Interpreter range, once known. */
  vm: { lo: bigint; hi: bigint } | null;
}

const MAX_CHUNKNAME = 512;

export class ProcessSymbolizer implements FrameResolvers {
  private readonly users = new Map<string, UserFrame>();
  private readonly luas = new Map<string, string>();
  private readonly kernels = new Map<bigint, string>();

  constructor(
    private readonly contexts: Map<number, ProcessContext>,
    private readonly kallsyms: KernelSymbols,
  ) {}

  kernel(addr: bigint): string {
    let name = this.kernels.get(addr);
    if (name === undefined) {
      const sym = lookupKernel(this.kallsyms, addr);
      name = `${sym ? sym.name : '[unknown]'}_[k]`;
      this.kernels.set(addr, name);
    }
    return name;
  }

  user(pid: number, addr: bigint): UserFrame {
    const cacheKey = `${pid}:${addr}`;
    let frame = this.users.get(cacheKey);
    if (!frame) {
      frame = this.resolveUser(pid, addr);
      this.users.set(cacheKey, frame);
    }
    return frame;
  }

  lua(pid: number, word: bigint): string {
    const cacheKey = `${pid}:${word}`;
    let name = this.luas.get(cacheKey);
    if (name === undefined) {
      name = this.resolveLua(pid, word);
      this.luas.set(cacheKey, name);
    }
    return name;
  }

  private mappingFor(ctx: ProcessContext, addr: bigint): Mapping | undefined {
    let m = findMapping(ctx.maps, addr);
    if (!m) {
      try {
        ctx.maps = readProcMaps(ctx.pid);
      } catch {
        return undefined;
      }
      m = findMapping(ctx.maps, addr);
    }
    return m;
  }

  private resolveUser(pid: number, addr: bigint): UserFrame {
    const unknown: UserFrame = { name: '[unknown]', region: 'native', keepsFramePointer: false, isReturnSite: false };
    const ctx = this.contexts.get(pid);
    if (!ctx) return unknown;
    const m = this.mappingFor(ctx, addr);
    if (!m) return unknown;
    if (m.path === '' && isExecutable(m)) {
      // Anonymous executable memory in a LuaJIT process is trace machine code.
      return { name: '[jit]', region: ctx.table ? 'jit' : 'native', keepsFramePointer: false, isReturnSite: false };
    }
    const obj = m.path.startsWith('[') || m.path === '' ? null : loadElfObject(hostPathOf(pid, m.path));
    const name = symbolizeAddress(obj, m, addr);
    let region: UserFrame['region'] = 'native';
    if (ctx.luajitPath && m.path === ctx.luajitPath) {
      region = ctx.vm && addr >= ctx.vm.lo && addr < ctx.vm.hi ? 'vm' : 'luajit';
    }
    let isReturnSite = false;
    if (obj) {
      const fileOffset = Number(addr - m.start + m.offset);
      isReturnSite = fileOffset > 0 && fileOffset <= obj.buf.length && looksLikeReturnAddress(obj.buf, fileOffset);
    }
    return { name, region, keepsFramePointer: obj ? obj.usesFramePointers : false, isReturnSite };
  }

  private resolveLua(pid: number, word: bigint): string {
    const kind = luaFrameKind(word);
    const payload = luaFramePayload(word);
    const ctx = this.contexts.get(pid);
    if (kind === LuaFrameKind.Fast) {
      return ctx?.table ? fastFunctionName(ctx.table, Number(payload)) : `builtin#${payload}`;
    }
    if (kind === LuaFrameKind.C) {
      // A lua_CFunction: name it like any native address.
      return this.user(pid, payload).name;
    }
    if (kind === LuaFrameKind.Lua && ctx?.mem && ctx.table) {
      return this.describeProto(ctx.mem, ctx.table, payload) ?? '(unknown Lua function)';
    }
    return '[unknown Lua frame]';
  }

  private describeProto(mem: MemoryReader, table: LuajitTable, proto: bigint): string | null {
    const o = table.offsets;
    const header = mem.read(proto, o.pt_size);
    if (!header) return null;
    const pt = decodeProtoHeader(header, o);
    const strHeader = mem.read(pt.chunkname, o.str_size);
    if (!strHeader) return null;
    const len = Math.min(decodeStringLength(strHeader, o), MAX_CHUNKNAME);
    const bytes = len > 0 ? mem.read(pt.chunkname + BigInt(o.str_size), len) : Buffer.alloc(0);
    if (!bytes) return null;
    return luaFrameName(displayChunkName(bytes.toString('utf8')), pt.firstline);
  }
}

export function describeMapping(m: Mapping): string {
  return m.path ? basename(m.path) : '[anon]';
}
