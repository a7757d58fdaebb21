// Learning each target's global_State: from the lua_State a uprobe saw,
// from the VM's DISPATCH register, or from a lua_State pointer on the
// sampled stack; validated under a candidate offset table, told to the
// kernel side, and the uprobes dropped so requests stop paying for them.
import type { Logger } from 'pino';
import { CliError, ExitCode } from '../errors.js';
import { type LuajitInProcess, type StateSource, fittingLayouts, interpreterRange, looksLikeDispatchTable, widenToVm } from '../luajit/detect.js';
import { type Fit, decideLayout, noFitMessage, planTables } from '../luajit/layout-choice.js';
import { type LuajitTable, tableName } from '../luajit/offset-tables.js';
import type { ExecMapping, ProcState } from '../native/abi.js';
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
  /** What the library said and which tables fit (layout-choice.ts decideLayout's note). */
  evidence?: string;
  /** Polls that saw the VM's dispatch table in r14 while no table fit. */
  unreadable?: number;
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
  /** Why that table: what the library said and which tables fit; null when none was chosen. */
  evidence: string | null;
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
    evidence: t.evidence ?? null,
    unwindMappings: t.unwindMappings ?? [],
  };
}

/**
 * The tables that may describe a process's LuaJIT, from what the library
 * says it is; throws the one-line refusal (exit 10) when it names a release
 * no table was made from.
 */
export function tablesFor(pid: number, lj: LuajitInProcess, tables: readonly LuajitTable[], log: Logger): LuajitTable[] {
  const plan = planTables(lj, tables);
  if ('refusal' in plan) throw new CliError(plan.refusal, ExitCode.LuajitUnsupported);
  if (plan.warning) log.warn({ target: pid, luajit: lj.path }, `pid ${pid}: ${plan.warning}`);
  log.debug({ target: pid, luajit: lj.path, version: lj.version, candidates: plan.candidates.map(tableName) }, `pid ${pid}: ${plan.evidence}`);
  return plan.candidates;
}

/** Polls (10 ms apart) that must see the LuaJIT run unreadable before it is refused: rules out a read that raced it. */
const UNREADABLE_POLLS = 20;

/**
 * For each process whose uprobe has reported a lua_State (or whose samples
 * offered the DISPATCH register or stack words): find the offset tables
 * under which it leads to a consistent global_State, decide among them
 * (src/luajit/layout-choice.ts), find the interpreter's code range, tell
 * the kernel side, and detach the uprobes so the process's requests stop
 * paying for the trap. A LuaJIT that no table reads is refused (exit 10):
 * its samples would have no Lua frames, or wrong ones.
 */
export function learnGlobalStates(bpf: ProfilerObject, targets: Map<number, Target>, slots: TableSlots, log: Logger): void {
  for (const [pid, t] of targets) {
    if (t.gKnown || !t.luajit || t.candidates.length === 0) continue;
    const state = bpf.processState(pid);
    if (!state || !t.ctx.mem) continue;
    const lj = t.luajit;
    const fit = (source: StateSource) => fittingLayouts(t.ctx.mem!, t.candidates, lj.textMapping, source);
    if (state.L === 0n) {
      // No API call seen yet: try the DISPATCH register from a sample (a
      // value from outside the VM just fails to validate, so keep waiting),
      // or a lua_State pointer in the VM's C frame near the stack top.
      let fits = state.dispatch ? fit({ via: 'DISPATCH register', dispatch: state.dispatch }) : [];
      let via = 'DISPATCH register';
      if (fits.length === 0) {
        fits = fit({ via: 'stack', words: state.stackWords });
        via = 'stack';
      }
      if (fits.length > 0) {
        adopt(bpf, t, pid, state, decide(lj, fits), slots, log, via);
      } else if (state.dispatch && looksLikeDispatchTable(t.ctx.mem, state.dispatch, lj.textMapping)) {
        // The VM runs (r14 is its dispatch table) and no table reads it.
        stillUnreadable(t, lj);
      }
      continue;
    }
    // A lua_State the process passed to the Lua API: if no table fits it
    // over a few polls (cur_L may name a thread being torn down), none will.
    const fits = fit({ via: 'uprobe', L: state.L });
    if (fits.length > 0) adopt(bpf, t, pid, state, decide(lj, fits), slots, log, 'uprobe');
    else stillUnreadable(t, lj);
  }
}

/** Counts a poll that saw the LuaJIT run and no table read it; refuses once they add up. */
function stillUnreadable(t: Target, lj: LuajitInProcess): void {
  t.unreadable = (t.unreadable ?? 0) + 1;
  if (t.unreadable >= UNREADABLE_POLLS) throw new CliError(noFitMessage(lj, t.candidates), ExitCode.LuajitUnsupported);
}

/** The table to adopt among those that fit; throws the refusal when they differ. */
function decide(lj: LuajitInProcess, fits: Fit[]): Fit & { note: string } {
  const decision = decideLayout(lj, fits);
  if (decision === null || 'refusal' in decision) {
    throw new CliError(decision?.refusal ?? noFitMessage(lj, []), ExitCode.LuajitUnsupported);
  }
  return decision;
}

/** Uses a validated global_State: tell the kernel side, then drop the uprobes. */
function adopt(
  bpf: ProfilerObject,
  t: Target,
  pid: number,
  state: ProcState,
  chosen: Fit & { note: string },
  slots: TableSlots,
  log: Logger,
  via: string,
): void {
  const { ctx } = t;
  const lj = t.luajit!;
  t.gKnown = true;
  t.via = via;
  t.evidence = chosen.note;
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
    {
      target: pid,
      luajit: lj.path,
      version: lj.version,
      table: tableName(chosen.table),
      via,
      g: `0x${chosen.g.toString(16)}`,
      vm: range ? `0x${range.lo.toString(16)}-0x${range.hi.toString(16)}` : null,
    },
    `pid ${pid}: LuaJIT ${tableName(chosen.table)} found (${chosen.note}); uprobes detached`,
  );
}

function detachAll(bpf: ProfilerObject, t: Target): void {
  for (const link of t.uprobeLinks) bpf.detach(link);
  t.uprobeLinks = [];
}

