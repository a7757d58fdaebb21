// Loads what the kernel-side unwinder needs for one run: each executable
// file's compact .eh_frame rows once into unwind_rows (shared by every
// process that maps the file), and each process's executable mappings with
// the address bias and row range of their file into proc_maps.
import { encodeProcMappings, type ExecMapping, MAX_MAPPINGS, MAX_UNWIND_ROWS, u32Key } from '../native/abi.js';
import type { NativeSession } from '../native/addon.js';
import { fileOffsetToVaddr } from '../symbolize/elf-file.js';
import { loadElfObject } from '../symbolize/elf-cache.js';
import { hostPathOf } from '../luajit/detect.js';
import { isExecutable, type Mapping } from '../target/proc-maps.js';
import { compileUnwindRows, encodeRows } from './rows.js';

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
  readonly report: UnwindLoadReport = { files: 0, rows: 0, skipped: new Map() };

  constructor(
    private readonly session: NativeSession,
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
    const rows = compileUnwindRows(obj.info);
    if (rows.length === 0) return this.skip('no .eh_frame');
    if (this.nextRow + rows.length > this.capacity) return this.skip('row table full');
    this.session.mapFillArray('unwind_rows', this.nextRow, encodeRows(rows));
    const loaded = { rowFirst: this.nextRow, rowCount: rows.length };
    this.nextRow += rows.length;
    this.files.set(identity, loaded);
    this.report.files += 1;
    this.report.rows += rows.length;
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
      const hostPath = hostPathOf(pid, m.path);
      const loaded = this.rowsFor(hostPath, `${m.dev}:${m.inode}`);
      const obj = loadElfObject(hostPath);
      const vaddr = obj ? fileOffsetToVaddr(obj.info, m.offset) : undefined;
      if (!loaded || vaddr === undefined) continue;
      out.push({ start: m.start, end: m.end, bias: m.start - vaddr, rowFirst: loaded.rowFirst, rowCount: loaded.rowCount });
    }
    this.session.mapUpdate('proc_maps', u32Key(pid), encodeProcMappings(out));
    return out;
  }
}
