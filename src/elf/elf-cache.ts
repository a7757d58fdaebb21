/**
 * Thin IO layer over the pure ELF readers: loads each object file once
 * (cached by path and (dev, inode, mtime)) and symbolizes runtime addresses.
 *
 * Extra symbol sources, when present:
 * - a separate debug file `<debugRoot>/.build-id/xx/yyyy.debug`;
 * - `.gnu_debugdata` (xz-compressed MiniDebugInfo), decompressed with the
 *   `xz` command if it is installed (no JS xz decoder is a dependency).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Mapping } from '../target/proc-maps.js';
import { type ElfInfo, parseElf, runtimeAddressToVaddr } from './elf-file.js';
import { type SymbolTable, lookup, readSymbols } from './elf-symbols.js';
import { moduleUsesFramePointers } from './frame-pointers.js';
import { type FunctionRange, findFunctionRange, functionRangesFromEhFrame } from './function-ranges.js';

export interface ElfObject {
  path: string;
  /** Whole file contents (section data in `info` are views into it). */
  buf: Buffer;
  info: ElfInfo;
  symbols: SymbolTable;
  /** Where extra symbols came from, e.g. ['.gnu_debugdata', '/usr/lib/debug/.build-id/..']. */
  symbolSources: string[];
  /** Computed on first access. */
  readonly usesFramePointers: boolean;
  /** Function boundaries from .eh_frame (sorted vaddrs); computed on first access. */
  readonly functionRanges: FunctionRange[];
}

export interface LoadOptions {
  /** Root of separate debug files; default /usr/lib/debug. Set '' to disable. */
  debugRoot?: string;
  /** Decompress .gnu_debugdata with `xz` (default true). */
  useGnuDebugdata?: boolean;
}

interface CacheEntry {
  key: string;
  obj: ElfObject | null;
}

const cache = new Map<string, CacheEntry>();

export function clearElfCache(): void {
  cache.clear();
}

/**
 * Loads (or returns the cached) ELF object at `path`. Returns null when the
 * file cannot be read or is not a supported ELF file.
 */
export function loadElfObject(path: string, opts: LoadOptions = {}): ElfObject | null {
  let key: string;
  try {
    const st = statSync(path, { bigint: true });
    if (!st.isFile()) return null;
    key = `${st.dev}:${st.ino}:${st.mtimeNs}`;
  } catch {
    return null;
  }
  const hit = cache.get(path);
  if (hit && hit.key === key) return hit.obj;

  let obj: ElfObject | null = null;
  try {
    const buf = readFileSync(path);
    const info = parseElf(buf);
    const extra: ElfInfo[] = [];
    const symbolSources: string[] = [];
    if (opts.useGnuDebugdata !== false) {
      const mini = loadGnuDebugdata(info);
      if (mini) {
        extra.push(mini);
        symbolSources.push('.gnu_debugdata');
      }
    }
    const debugRoot = opts.debugRoot ?? '/usr/lib/debug';
    if (debugRoot !== '' && info.buildId !== undefined && info.buildId.length > 2) {
      const dbgPath = join(debugRoot, '.build-id', info.buildId.slice(0, 2), info.buildId.slice(2) + '.debug');
      const dbg = tryParseFile(dbgPath);
      if (dbg && dbg.buildId === info.buildId) {
        extra.push(dbg);
        symbolSources.push(dbgPath);
      }
    }
    const symbols = readSymbols(info, buf, extra);
    let fp: boolean | undefined;
    let ranges: FunctionRange[] | undefined;
    obj = {
      path,
      buf,
      info,
      symbols,
      symbolSources,
      get usesFramePointers(): boolean {
        if (fp === undefined) fp = moduleUsesFramePointers(info, buf, symbols);
        return fp;
      },
      get functionRanges(): FunctionRange[] {
        if (ranges === undefined) ranges = functionRangesFromEhFrame(info);
        return ranges;
      },
    };
  } catch {
    obj = null;
  }
  cache.set(path, { key, obj });
  return obj;
}

function tryParseFile(path: string): ElfInfo | undefined {
  try {
    return parseElf(readFileSync(path));
  } catch {
    return undefined;
  }
}

let xzMissing = false;

/** Decompresses and parses `.gnu_debugdata`, if present and `xz` is available. */
function loadGnuDebugdata(info: ElfInfo): ElfInfo | undefined {
  const sec = info.sectionsByName.get('.gnu_debugdata');
  if (!sec || sec.data.length === 0 || xzMissing) return undefined;
  try {
    const out = execFileSync('xz', ['-dc'], { input: sec.data, maxBuffer: 256 << 20, stdio: ['pipe', 'pipe', 'ignore'] });
    return parseElf(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') xzMissing = true;
    return undefined;
  }
}

function hex(n: bigint): string {
  return '0x' + n.toString(16);
}

/**
 * Names the function at runtime address `addr` inside `mapping`. Without a
 * symbol: `[<basename>+0x<vaddr>]` with the vaddr of the function's start
 * from .eh_frame, else of the address itself (usable with `addr2line -e`), or the file offset when the ELF could not be read; pseudo
 * mappings give e.g. `[vdso+0x<offset in mapping>]`, anonymous ones
 * `[unknown]`.
 */
export function symbolizeAddress(obj: ElfObject | null, mapping: Mapping, addr: bigint): string {
  if (mapping.path === '') return '[unknown]';
  if (mapping.path.startsWith('[')) return `[${mapping.path.slice(1, -1)}+${hex(addr - mapping.start)}]`;
  const name = basename(mapping.path);
  const fileOff = addr - mapping.start + mapping.offset;
  if (!obj) return `[${name}+${hex(fileOff)}]`;
  const vaddr = runtimeAddressToVaddr(obj.info, mapping, addr);
  if (vaddr === undefined) return `[${name}+${hex(fileOff)}]`;
  const sym = lookup(obj.symbols, vaddr);
  if (sym) return sym.name;
  // No symbol (stripped static function): name the function by its start
  // from .eh_frame, so its samples aggregate instead of one frame per
  // instruction.
  const fn = findFunctionRange(obj.functionRanges, vaddr);
  return `[${name}+${hex(fn ? fn.start : vaddr)}]`;
}
