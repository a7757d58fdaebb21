// Loads what the kernel-side unwinder needs for one run: each executable
// file's compact .eh_frame rows once into unwind_rows (shared by every
// process that maps the file), and each process's executable mappings with
// the address bias and row range of their file into proc_maps.
import { encodeUnwindRows, type ExecMapping, MAX_MAPPINGS, MAX_UNWIND_ROWS, UNWIND_ROW_SIZE } from '../native/abi.js';
import type { ProfilerObject } from '../native/profiler-object.js';
import { fileOffsetToVaddr } from '../elf/elf-file.js';
import { loadElfObject } from '../elf/elf-cache.js';
import { targetFilePath } from '../target/target-files.js';
import { isExecutable, type Mapping } from '../target/proc-maps.js';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ElfInfo } from '../elf/elf-file.js';
import { compileUnwindRows } from './rows.js';

/** Bumped whenever the row format or the compiler's output changes. */
const ROWS_FORMAT = 1;

function cacheDir(): string {
  return join(process.env.APISIX_PROFILE_CACHE ?? '/var/cache/apisix-profile', 'unwind');
}

/**
 * A file's encoded rows, compiled once per build: compiling libc or
 * libcrypto takes a few hundred milliseconds, reading the cached rows none.
 * Files without a build-id are compiled every time.
 */
function cachedRows(info: ElfInfo, size: number): Buffer {
  const id = info.buildId ? `${info.buildId}-${size}-v${ROWS_FORMAT}.rows` : null;
  const path = id ? join(cacheDir(), id) : null;
  if (path) {
    try {
      return readFileSync(path);
    } catch {
      /* not cached yet */
    }
  }
  const encoded = encodeUnwindRows(compileUnwindRows(info));
  if (path) {
    try {
      mkdirSync(cacheDir(), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, encoded);
      renameSync(tmp, path);
    } catch {
      /* a read-only cache only costs time */
    }
  }
  return encoded;
}

export interface LoadedFile {
  rowFirst: number;
  rowCount: number;
}

export interface UnwindLoadReport {
  files: number;
  rows: number;
  /** Mappings left without rows, by reason (e.g. "no .eh_frame", "row table full"). */
  skipped: Map<string, number>;
}

export class UnwindLoader {
  private readonly files = new Map<string, LoadedFile>();
  private nextRow = 0;
  /** Counts proc_maps writes: each one retires the kernel's cached rows for that process. */
  private generation = 0;
  readonly report: UnwindLoadReport = { files: 0, rows: 0, skipped: new Map() };

  constructor(
    private readonly bpf: ProfilerObject,
    private readonly capacity = MAX_UNWIND_ROWS,
  ) {}

  /**
   * Rows for a file, loading them the first time; null when it has none.
   * Files are known by device and inode, so every process mapping the same
   * file (all workers, and the ones a reload starts) shares one copy.
   */
  private rowsFor(path: string, identity: string): LoadedFile | null {
    const known = this.files.get(identity);
    if (known) return known;
    const obj = loadElfObject(path);
    if (!obj) return this.skip('unreadable ELF');
    const encoded = cachedRows(obj.info, obj.buf.length);
    const count = encoded.length / UNWIND_ROW_SIZE;
    if (count === 0) return this.skip('no .eh_frame');
    if (this.nextRow + count > this.capacity) return this.skip('row table full');
    this.bpf.loadUnwindRows(this.nextRow, encoded);
    const loaded = { rowFirst: this.nextRow, rowCount: count };
    this.nextRow += count;
    this.files.set(identity, loaded);
    this.report.files += 1;
    this.report.rows += count;
    return loaded;
  }

  private skip(reason: string): null {
    this.report.skipped.set(reason, (this.report.skipped.get(reason) ?? 0) + 1);
    return null;
  }

  /** Puts pid's executable file mappings (and their files' rows) in place. */
  addProcess(pid: number, maps: readonly Mapping[]): ExecMapping[] {
    const out: ExecMapping[] = [];
    for (const m of maps) {
      if (!isExecutable(m) || m.path === '' || m.path.startsWith('[')) continue;
      if (out.length >= MAX_MAPPINGS) {
        this.skip('too many mappings');
        break;
      }
      const hostPath = targetFilePath(pid, m);
      const loaded = this.rowsFor(hostPath, `${m.dev}:${m.inode}`);
      const obj = loadElfObject(hostPath);
      const vaddr = obj ? fileOffsetToVaddr(obj.info, m.offset) : undefined;
      if (!loaded || vaddr === undefined) continue;
      out.push({ start: m.start, end: m.end, bias: m.start - vaddr, rowFirst: loaded.rowFirst, rowCount: loaded.rowCount });
    }
    this.bpf.setProcessMappings(pid, out, ++this.generation);
    return out;
  }
}
