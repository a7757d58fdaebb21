// Learning each target's global_State: from the lua_State a uprobe saw,
// from the VM's DISPATCH register, or from a lua_State pointer on the
// sampled stack; validated under a candidate offset table, told to the
// kernel side, and the uprobes dropped so requests stop paying for them.
import type { Logger } from 'pino';
import { type LuajitInProcess, chooseTable, chooseTableFromDispatch, chooseTableFromWords, interpreterRange, widenToVm } from '../luajit/detect.js';
import { type LuajitTable, tableName } from '../luajit/offset-tables.js';
import { type ExecMapping, PROC_NO_LUAJIT, type ProcState } from '../native/abi.js';
import type { ProfilerObject } from '../native/profiler-object.js';
import type { ProcessContext } from '../symbolize/process-symbolizer.js';
import type { TableSlots } from './table-slots.js';

export interface Target {
  ctx: ProcessContext;
  luajit: LuajitInProcess | null;
  candidates: LuajitTable[];
  uprobeLinks: number[];
  gKnown: boolean;
  /** How its global_State was found: 'uprobe', 'DISPATCH register' or 'stack'. */
  via?: string;
  /** Its mappings in proc_maps (with .eh_frame unwinding). */
  unwindMappings?: ExecMapping[];
}

/** What a run learnt about one target (for `doctor`). */
export interface TargetOutcome {
  pid: number;
  /** LuaJIT's path as the process maps it; null without LuaJIT. */
  luajit: string | null;
  /** The offset table chosen (tableName); null when none was. */
  table: string | null;
  via: string | null;
  /** global_State, hex; null when not found. */
  g: string | null;
  /** true once a lua_State was seen, even when no table matched it. */
  gKnown: boolean;
  unwindMappings: ExecMapping[];
}

export function targetOutcome(pid: number, t: Target): TargetOutcome {
  const { ctx } = t;
  return {
    pid,
    luajit: t.luajit?.path ?? null,
    table: ctx.table ? tableName(ctx.table) : null,
    via: t.via ?? null,
    g: ctx.g !== null ? `0x${ctx.g.toString(16)}` : null,
    gKnown: t.gKnown,
    unwindMappings: t.unwindMappings ?? [],
  };
}

/**
 * For each process whose uprobe has reported a lua_State: find the offset
 * table under which it leads to a consistent global_State, find the
 * interpreter's code range, tell the kernel side, and detach the uprobes so
 * the process's requests stop paying for the trap.
 */
export function learnGlobalStates(bpf: ProfilerObject, targets: Map<number, Target>, slots: TableSlots, log: Logger): void {
  for (const [pid, t] of targets) {
    if (t.gKnown || !t.luajit || t.candidates.length === 0) continue;
    const state = bpf.processState(pid);
    if (!state) continue;
    const { ctx } = t;
    const lj = t.luajit;
    if (state.L === 0n) {
      // No API call seen yet: try the DISPATCH register from a sample; a
      // value from outside the VM just fails to validate, so keep waiting.
      const viaDispatch = state.dispatch && ctx.mem ? chooseTableFromDispatch(ctx.mem, t.candidates, state.dispatch) : null;
      if (viaDispatch) {
        adopt(bpf, t, pid, state, viaDispatch, slots, log, 'DISPATCH register');
        continue;
      }
      // Or a lua_State pointer in the VM's C frame near the stack top.
      const viaStack = ctx.mem ? chooseTableFromWords(ctx.mem, t.candidates, state.stackWords) : null;
      if (viaStack) adopt(bpf, t, pid, state, viaStack, slots, log, 'stack');
      continue;
    }
    t.gKnown = true;
    const chosen = ctx.mem ? chooseTable(ctx.mem, t.candidates, state.L) : null;
    if (!chosen) {
      detachAll(bpf, t);
      bpf.setProcessState(pid, { ...state, table: PROC_NO_LUAJIT });
      log.warn({ target: pid, luajit: lj!.path, tried: t.candidates.map(tableName) }, `pid ${pid}: no known LuaJIT layout matches ${lj!.path}: profiling C frames only`);
      continue;
    }
    adopt(bpf, t, pid, state, chosen, slots, log, 'uprobe');
  }
}

/** Uses a validated global_State: tell the kernel side, then drop the uprobes. */
function adopt(
  bpf: ProfilerObject,
  t: Target,
  pid: number,
  state: ProcState,
  chosen: { table: LuajitTable; g: bigint },
  slots: TableSlots,
  log: Logger,
  via: string,
): void {
  const { ctx } = t;
  const lj = t.luajit!;
  t.gKnown = true;
  t.via = via;
  ctx.table = chosen.table;
  ctx.g = chosen.g;
  const handlers = interpreterRange(ctx.mem!, chosen.table, chosen.g, lj.textMapping);
  const range = handlers ? widenToVm(handlers, lj) : null;
  ctx.vm = range;
  bpf.setProcessState(pid, { ...state, g: chosen.g, table: slots.slotOf(chosen.table), vmLo: range?.lo ?? 0n, vmHi: range?.hi ?? 0n });
  // Detaching waits for the kernel to quiesce (tens of ms per probe):
  // only now, so the samples meanwhile already get Lua frames.
  detachAll(bpf, t);
  log.info(
    { target: pid, luajit: lj.path, table: tableName(chosen.table), via, g: `0x${chosen.g.toString(16)}`, vm: range ? `0x${range.lo.toString(16)}-0x${range.hi.toString(16)}` : null },
    `pid ${pid}: LuaJIT ${tableName(chosen.table)} found; uprobes detached`,
  );
}

function detachAll(bpf: ProfilerObject, t: Target): void {
  for (const link of t.uprobeLinks) bpf.detach(link);
  t.uprobeLinks = [];
}

