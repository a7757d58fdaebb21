// Names the frames of one sampled process: native user addresses through
// its mapped ELF files, Lua frames through its memory, kernel addresses
// through kallsyms. Caches everything; reads a process's maps again only
// when an address falls outside what it knew.
import type { FrameResolvers, UserFrame } from './frame-resolvers.js';
import type { LuajitTable } from '../luajit/offset-tables.js';
import { type LineMode, type LuaFrameName, nameLuaFrames } from '../luajit/lua-frames.js';
import { PrototypeReader } from '../luajit/prototypes.js';
import { tracePosition } from '../luajit/traces.js';
import type { SampleKey } from '../native/abi.js';
import { findMapping, isExecutable, type Mapping, readProcMaps } from '../target/proc-maps.js';
import type { MemoryReader } from '../target/process-memory.js';
import { type ElfObject, loadElfObject, symbolizeAddress } from '../elf/elf-cache.js';
import { looksLikeReturnAddress } from '../elf/frame-pointers.js';
import { type KernelSymbols, lookupKernel } from './kallsyms.js';
import { targetFilePath } from '../target/target-files.js';

export interface ProcessContext {
  pid: number;
  maps: Mapping[];
  mem: MemoryReader | null;
  table: LuajitTable | null;
  luajitPath: string | null;
  /** Interpreter range, once known. */
  vm: { lo: bigint; hi: bigint } | null;
  /** global_State address, once known. */
  g: bigint | null;
}

export class ProcessSymbolizer implements FrameResolvers {
  private readonly users = new Map<string, UserFrame>();
  private readonly kernels = new Map<bigint, string>();
  private readonly readers = new Map<number, PrototypeReader>();
  private readonly objects = new Map<string, ElfObject>();
  /** Lua frame names by a stack's Lua part: pid, leaf position, frame words and positions. */
  private readonly luaParts = new Map<string, LuaFrameName[]>();

  constructor(
    private readonly contexts: Map<number, ProcessContext>,
    private readonly kallsyms: KernelSymbols,
    private readonly lines: LineMode = 'definition',
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

  /** Every Lua frame's name, C functions included (FrameResolvers). */
  luaFrames(key: SampleKey): string[] {
    return this.nameCFunctions(key.pid, this.liveLuaFrames(key));
  }

  /**
   * The names that need the live process: Lua functions, read from its
   * memory while their prototypes surely exist (the GC may free them).
   * C functions stay addresses for nameCFunctions. Stacks that differ only
   * in their native frames share their Lua part, which is named once.
   */
  liveLuaFrames(key: SampleKey): LuaFrameName[] {
    const ctx = this.contexts.get(key.pid);
    const reader = ctx ? this.readerFor(ctx) : null;
    let leafPc: bigint | null = null;
    // Inside compiled code the leaf's current line comes from the trace.
    if (this.lines === 'current' && reader && ctx?.g && key.vmstate > 0 && key.user.length > 0) {
      leafPc = tracePosition(reader, ctx.g, key.vmstate, key.user[0])?.pc ?? null;
    }
    const luaPart = `${key.pid}/${leafPc ?? ''}/${key.lua.join(',')}/${key.luaPos.join(',')}`;
    let names = this.luaParts.get(luaPart);
    if (!names) {
      names = nameLuaFrames({ words: key.lua, positions: key.luaPos, leafPc }, { reader, lines: this.lines });
      this.luaParts.set(luaPart, names);
    }
    return names;
  }

  /** Names the C functions among a process's Lua frame names (from its ELF files). */
  nameCFunctions(pid: number, names: readonly LuaFrameName[]): string[] {
    return names.map((name) => (typeof name === 'string' ? name : this.user(pid, name).name));
  }

  private readerFor(ctx: ProcessContext): PrototypeReader | null {
    if (!ctx.mem || !ctx.table) return null;
    let reader = this.readers.get(ctx.pid);
    if (!reader || reader.table !== ctx.table) {
      reader = new PrototypeReader(ctx.mem, ctx.table);
      this.readers.set(ctx.pid, reader);
    }
    return reader;
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

  /**
   * The ELF file of a mapping, read through the process's root once and
   * remembered by device and inode: every worker mapping the same file
   * shares it, and frames of a process that has exited still get names from
   * the copy read while it ran.
   */
  private objectFor(pid: number, m: Mapping): ElfObject | null {
    const identity = `${m.dev}:${m.inode}`;
    const known = this.objects.get(identity);
    if (known) return known;
    const obj = loadElfObject(targetFilePath(pid, m));
    if (obj) this.objects.set(identity, obj);
    return obj;
  }

  /**
   * Reads the ELF files a process maps now, while it surely runs: its
   * native frames are named after sampling, when it may have exited.
   */
  preload(pid: number): void {
    const ctx = this.contexts.get(pid);
    if (!ctx) return;
    for (const m of ctx.maps) {
      if (isExecutable(m) && m.path !== '' && !m.path.startsWith('[')) this.objectFor(pid, m);
    }
  }

  private resolveUser(pid: number, addr: bigint): UserFrame {
    const unknown: UserFrame = { name: '[unknown]', region: 'native', keepsFramePointer: false, isReturnSite: false };
    const ctx = this.contexts.get(pid);
    if (!ctx) return unknown;
    const m = this.mappingFor(ctx, addr);
    // Anonymous executable memory in a LuaJIT process is trace machine
    // code; so is code we never saw mapped there (traces get new machine
    // code areas, and a process that has exited can no longer be asked).
    const jit: UserFrame = { name: '[jit]', region: 'jit', keepsFramePointer: false, isReturnSite: false };
    if (!m) return ctx.table ? jit : unknown;
    if (m.path === '' && isExecutable(m)) return ctx.table ? jit : { ...jit, region: 'native' };
    const obj = m.path.startsWith('[') || m.path === '' ? null : this.objectFor(pid, m);
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
}
