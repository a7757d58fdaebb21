// The kernel side holds MAX_LJ_TABLES offset tables (the lj_tables array
// map); far more are committed. A run fills a slot only for a table it
// adopts for some process, so the number of tables in luajit-offsets/ is
// not bounded by the map's size, only the number of distinct LuaJIT builds
// one run profiles at once.
import { CliError, ExitCode } from '../errors.js';
import { type LuajitTable, tableName } from '../luajit/offset-tables.js';
import { MAX_LJ_TABLES } from '../native/abi.js';
import type { ProfilerObject } from '../native/profiler-object.js';

export class TableSlots {
  private readonly slots: LuajitTable[] = [];

  constructor(private readonly bpf: Pick<ProfilerObject, 'setOffsetTables'>) {}

  /** The table's slot in lj_tables, filled on first use. */
  slotOf(table: LuajitTable): number {
    const known = this.slots.indexOf(table);
    if (known >= 0) return known;
    if (this.slots.length >= MAX_LJ_TABLES) {
      throw new CliError(
        `the targets run more than ${MAX_LJ_TABLES} different LuaJIT builds (${[...this.slots, table].map(tableName).join(', ')}): profile fewer processes at once`,
        ExitCode.LuajitUnsupported,
      );
    }
    this.slots.push(table);
    this.bpf.setOffsetTables(this.slots.map((t) => t.offsets));
    return this.slots.length - 1;
  }
}
