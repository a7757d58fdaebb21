// One profiling run, start to finish: load BPF, learn each process's
// global_State through uprobes (then drop them), sample on every CPU, drain
// the kernel's counts while the run goes on, and turn them into stacks.
// Everything attached is released on every path, including errors.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type LuajitInProcess, findLuajit, interpreterRange, pickTable, validateGlobalState, widenToVm } from '../luajit/detect.js';
import { type LuajitTable, loadOffsetTables, tableName } from '../luajit/offset-tables.js';
import {
  decodeProcState,
  decodeSampleKey,
  encodeConfig,
  encodeLjOffsets,
  encodeProcState,
  MAX_LJ_TABLES,
  STAT_COUNT,
  StatIndex,
  SampleFlags,
  u32Key,
} from '../native/abi.js';
import { type NativeSession, openNativeSession } from '../native/addon.js';
import { packageRoot } from '../package-root.js';
import type { Stack } from '../report/stack.js';
import { readKallsyms } from '../symbolize/kallsyms.js';
import { type ProcessContext, ProcessSymbolizer } from '../symbolize/process-symbolizer.js';
import { readProcMaps } from '../target/proc-maps.js';
import { openProcessMemory } from '../target/process-memory.js';
import { assembleStack } from './assemble.js';

export interface RunOptions {
  pids: number[];
  durationSec: number;
  frequency: number;
  kernelStacks: boolean;
  log: Logger;
  /** Ends sampling early (Ctrl-C); the run still returns what it has. */
  signal?: AbortSignal;
  /** Called once sampling has started and once it has stopped. */
  onPhase?: (phase: 'sampling' | 'stopped') => void;
}

export interface RunStats {
  samples: number;
  samplesInLua: number;
  /** Samples whose native frames were cut at an untrustworthy frame pointer. */
  nativeCutShort: number;
  samplesWithoutG: number;
  lostMapFull: number;
  luaBadReads: number;
  uprobeHits: number;
  perPid: Map<number, number>;
  elapsedSec: number;
}

export interface RunResult {
  stacks: Stack[];
  stats: RunStats;
}

const POLL_MS = 100;
const FAST_POLL_MS = 10;
const DRAIN_EVERY_MS = 1000;
const COUNTS_MAPS = ['counts0', 'counts1'] as const;

export function bpfObjectPath(): string {
  return join(packageRoot(), 'build', 'bpf', 'profiler.bpf.o');
}

interface Target {
  ctx: ProcessContext;
  luajit: LuajitInProcess | null;
  tableIndex: number;
  uprobeLinks: number[];
  gKnown: boolean;
}

export async function runProfile(opts: RunOptions): Promise<RunResult> {
  const { log } = opts;
  const tables = loadOffsetTables();
  const targets = new Map<number, Target>();
  const usedTables: LuajitTable[] = [];
  const contexts = new Map<number, ProcessContext>();

  for (const pid of opts.pids) {
    const maps = readProcMaps(pid);
    const luajit = findLuajit(pid, maps);
    let table: LuajitTable | null = null;
    if (!luajit) {
      log.warn({ pid }, `pid ${pid} has no LuaJIT mapped: profiling C frames only`);
    } else {
      table = pickTable(luajit, tables);
    }
    let tableIndex = MAX_LJ_TABLES;
    if (table) {
      tableIndex = usedTables.indexOf(table);
      if (tableIndex < 0) tableIndex = usedTables.push(table) - 1;
    }
    const ctx: ProcessContext = {
      pid,
      maps,
      mem: luajit ? openProcessMemory(pid) : null,
      table,
      luajitPath: luajit?.path ?? null,
      vm: null,
    };
    contexts.set(pid, ctx);
    targets.set(pid, { ctx, luajit, tableIndex, uprobeLinks: [], gKnown: false });
  }

  const session = openNativeSession(bpfObjectPath(), log.isLevelEnabled('trace'));
  const aggregate = new Map<string, number>();
  const symbolizer = new ProcessSymbolizer(contexts, opts.kernelStacks ? readKallsyms() : { symbols: [] } as never);
  const stats: RunStats = {
    samples: 0,
    samplesInLua: 0,
    nativeCutShort: 0,
    samplesWithoutG: 0,
    lostMapFull: 0,
    luaBadReads: 0,
    uprobeHits: 0,
    perPid: new Map(),
    elapsedSec: 0,
  };
  let active = 0;

  const drain = (mapName: string) => {
    for (const [keyBuf, valueBuf] of session.mapEntries(mapName)) {
      const count = Number(valueBuf.readBigUInt64LE(0));
      const key = decodeSampleKey(keyBuf);
      const stack = assembleStack(key, symbolizer);
      const text = stack.frames.join(';');
      aggregate.set(text, (aggregate.get(text) ?? 0) + count);
      stats.perPid.set(key.pid, (stats.perPid.get(key.pid) ?? 0) + count);
      if (key.flags & SampleFlags.InLua) stats.samplesInLua += count;
      if (key.flags & SampleFlags.NoG) stats.samplesWithoutG += count;
      if (stack.nativeCutShort) stats.nativeCutShort += count;
    }
    session.mapClear(mapName);
  };

  // Switch the programs to the other counts map, give in-flight programs
  // time to finish with the old one, then drain it.
  const flipAndDrain = async () => {
    const old = active;
    active = 1 - active;
    session.mapUpdate('control', u32Key(0), u32Key(active));
    await sleep(5);
    drain(COUNTS_MAPS[old]);
  };

  const started = Date.now();
  try {
    session.setRodata(encodeConfig({ kernelStacks: opts.kernelStacks }));
    session.load();
    usedTables.forEach((t, i) => session.mapUpdate('lj_tables', u32Key(i), encodeLjOffsets(t.offsets)));
    for (const [pid, t] of targets) {
      session.mapUpdate('procs', u32Key(pid), encodeProcState({ g: 0n, vmLo: 0n, vmHi: 0n, table: t.tableIndex, uprobeHits: 0 }));
      if (t.luajit && t.ctx.table) {
        for (const probe of t.luajit.probeOffsets) {
          t.uprobeLinks.push(session.attachUprobe('learn_global_state', pid, t.luajit.hostPath, Number(probe.fileOffset)));
        }
        log.debug({ pid, luajit: t.luajit.path, table: tableName(t.ctx.table), probes: t.luajit.probeOffsets.length }, 'uprobes attached');
      }
    }
    const cpus = session.attachPerfEvent('sample_stack', opts.frequency);
    log.info({ pids: opts.pids, cpus: cpus.length, frequency: opts.frequency, durationSec: opts.durationSec }, 'sampling');
    opts.onPhase?.('sampling');

    const deadline = started + opts.durationSec * 1000;
    let lastDrain = Date.now();
    while (Date.now() < deadline && !opts.signal?.aborted) {
      // Poll fast until every process's global_State is known: until then
      // its requests pay for the uprobe and its VM range is not set.
      const pending = [...targets.values()].some((t) => t.uprobeLinks.length > 0);
      await sleep(Math.min(pending ? FAST_POLL_MS : POLL_MS, Math.max(1, deadline - Date.now())), opts.signal);
      learnGlobalStates(session, targets, log);
      if (Date.now() - lastDrain >= DRAIN_EVERY_MS) {
        await flipAndDrain();
        lastDrain = Date.now();
      }
    }
    stats.elapsedSec = (Date.now() - started) / 1000;
    opts.onPhase?.('stopped');
    log.info({ elapsedSec: stats.elapsedSec }, 'sampling stopped');
    // Stop counting (the program ignores processes not in procs), then
    // drain both maps: the totals then match the kernel's own counters.
    for (const pid of targets.keys()) session.mapDelete('procs', u32Key(pid));
    await sleep(5);
    drain(COUNTS_MAPS[0]);
    drain(COUNTS_MAPS[1]);

    const counters = readStats(session);
    stats.samples = counters[StatIndex.Samples];
    stats.lostMapFull = counters[StatIndex.LostMapFull];
    stats.luaBadReads = counters[StatIndex.LuaBadRead];
    stats.uprobeHits = counters[StatIndex.UprobeHits];
  } finally {
    session.close();
    for (const ctx of contexts.values()) ctx.mem?.close();
  }
  const stacks = [...aggregate].map(([text, count]) => ({ frames: text === '' ? [] : text.split(';'), count }));
  return { stacks, stats };
}

/** Per-CPU counters summed over CPUs. */
function readStats(session: NativeSession): number[] {
  const totals: number[] = [];
  for (let i = 0; i < STAT_COUNT; i++) {
    const value = session.mapLookup('stats', u32Key(i));
    let sum = 0n;
    if (value) for (let off = 0; off + 8 <= value.length; off += 8) sum += value.readBigUInt64LE(off);
    totals.push(Number(sum));
  }
  return totals;
}

/**
 * For each process whose uprobe has reported global_State: check it against
 * live memory, find the interpreter's range, and detach the uprobes so its
 * requests stop paying for the trap.
 */
function learnGlobalStates(session: NativeSession, targets: Map<number, Target>, log: Logger): void {
  for (const [pid, t] of targets) {
    if (t.gKnown || t.uprobeLinks.length === 0) continue;
    const raw = session.mapLookup('procs', u32Key(pid));
    if (!raw) continue;
    const state = decodeProcState(raw);
    if (state.g === 0n) continue;
    t.gKnown = true;
    for (const link of t.uprobeLinks) session.detach(link);
    t.uprobeLinks = [];
    const { ctx } = t;
    if (!ctx.mem || !ctx.table || !validateGlobalState(ctx.mem, ctx.table, state.g)) {
      log.warn({ pid, g: `0x${state.g.toString(16)}` }, `pid ${pid}: LuaJIT state does not match the ${ctx.table ? tableName(ctx.table) : 'known'} layout: profiling C frames only`);
      session.mapUpdate('procs', u32Key(pid), encodeProcState({ ...state, g: 0n, table: MAX_LJ_TABLES }));
      ctx.table = null;
      continue;
    }
    const lj = t.luajit!;
    const handlers = interpreterRange(ctx.mem, ctx.table, state.g, lj.textMapping);
    const range = handlers ? widenToVm(handlers, lj) : null;
    ctx.vm = range;
    session.mapUpdate('procs', u32Key(pid), encodeProcState({ ...state, vmLo: range?.lo ?? 0n, vmHi: range?.hi ?? 0n }));
    log.debug({ pid, g: `0x${state.g.toString(16)}`, vm: range ? `0x${range.lo.toString(16)}-0x${range.hi.toString(16)}` : null }, 'global_State learned; uprobes detached');
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
