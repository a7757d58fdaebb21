// One profiling run, start to finish: load BPF, learn each process's
// global_State through uprobes (then drop them), sample on every CPU, drain
// the kernel's counts while the run goes on, and turn them into stacks.
// Everything attached is released on every path, including errors.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, ExitCode } from '../errors.js';
import type { Logger } from 'pino';
import { candidateTables, findLuajit } from '../luajit/detect.js';
import { loadOffsetTables, tableName } from '../luajit/offset-tables.js';
import {
  decodeSampleKey,
  type SampleKey,
  encodeConfig,
  encodeLjOffsets,
  encodeProcState,
  KNOWN_STACKS_MAX,
  MAX_LJ_TABLES,
  MAX_PROCS,
  PROC_NO_LUAJIT,
  SampleFlags,
  STAT_COUNT,
  StatIndex,
  u32Key,
} from '../native/abi.js';
import { type NativeSession, openNativeSession } from '../native/addon.js';
import { packageRoot } from '../package-root.js';
import type { LineMode, LuaFrameName } from '../luajit/lua-frames.js';
import type { Stack } from '../report/stack.js';
import { EMPTY_KERNEL_SYMBOLS, readKallsyms } from '../symbolize/kallsyms.js';
import { type ProcessContext, ProcessSymbolizer } from '../symbolize/process-symbolizer.js';
import { readProcMaps } from '../target/proc-maps.js';
import { openProcessMemory } from '../target/process-memory.js';
import { assembleStack } from './assemble.js';
import { endQuiet, quietForSampling } from './quiet-runtime.js';
import { learnGlobalStates, type Target, type TargetOutcome, targetOutcome } from './global-state.js';
import { countKey, emptyStats, type RunStats } from './stats.js';
import { UnwindLoader } from '../unwind/loader.js';
import { loadBpfObject } from '../kernel/load.js';

export interface RunOptions {
  pids: number[];
  durationSec: number;
  frequency: number;
  kernelStacks: boolean;
  /** Lua frame lines: definition (default; frames aggregate per function) or current. */
  lines?: LineMode;
  /** Native frames: from .eh_frame (default) or frame pointers only. */
  unwind?: 'cfi' | 'fp';
  /** Kernel BTF for CO-RE relocation; default: the running kernel's. */
  btfPath?: string;
  /** Unique stacks the counts and stacks maps hold between drains (default DEFAULT_MAX_STACKS). */
  maxStacks?: number;
  log: Logger;
  /** Ends sampling early (Ctrl-C); the run still returns what it has. */
  signal?: AbortSignal;
  /** Called once sampling has started and once it has stopped. */
  onPhase?: (phase: 'sampling' | 'stopped') => void;
  /**
   * Current target pids, asked about once a second: new ones join the
   * profile (an nginx master's workers after a reload). Optional.
   */
  discover?: () => number[];
  /** Called after each drain with the samples counted so far. */
  onProgress?: (samples: number) => void;
}


export type { RunStats } from './stats.js';

/** A stack counted while sampling: its key, its Lua frames' names, its samples. */
interface CountedStack {
  key: SampleKey;
  luaNames: LuaFrameName[];
  count: number;
}

export interface RunResult {
  stacks: Stack[];
  stats: RunStats;
  /** Per target: its LuaJIT, the table and global_State found, its unwind mappings. */
  targets: TargetOutcome[];
}

/**
 * Unique stacks per drain period: the size of counts0/counts1 (preallocated,
 * about 100 bytes of kernel memory an entry each) and of stacks (filled on
 * demand). A sample of a stack that finds them full is counted as lost.
 */
export const DEFAULT_MAX_STACKS = 16384;
export const MAX_STACKS_LIMIT = 1 << 20;

const FAST_POLL_MS = 10;
const DRAIN_EVERY_MS = 1000;
const COUNTS_MAPS = ['counts0', 'counts1'] as const;
const KNOWN_VALUE = Buffer.from([1]);

export function bpfObjectPath(): string {
  return join(packageRoot(), 'build', 'bpf', 'profiler.bpf.o');
}

export async function runProfile(opts: RunOptions): Promise<RunResult> {
  const { log } = opts;
  const tables = loadOffsetTables();
  if (tables.length > MAX_LJ_TABLES) throw new Error(`more than ${MAX_LJ_TABLES} LuaJIT offset tables`);
  const targets = new Map<number, Target>();
  const contexts = new Map<number, ProcessContext>();

  // Reads what a target needs from /proc; null when it is already gone.
  const inspect = (pid: number): Target | null => {
    let maps;
    try {
      maps = readProcMaps(pid);
    } catch {
      return null;
    }
    const luajit = findLuajit(pid, maps);
    if (!luajit) log.warn({ target: pid }, `pid ${pid} has no LuaJIT mapped: profiling C frames only`);
    const ctx: ProcessContext = {
      pid,
      maps,
      mem: luajit ? openProcessMemory(pid) : null,
      table: null,
      luajitPath: luajit?.path ?? null,
      vm: null,
      g: null,
    };
    const candidates = luajit ? candidateTables(luajit, tables) : [];
    return { ctx, luajit, candidates, uprobeLinks: [], gKnown: false };
  };

  for (const pid of opts.pids) {
    const t = inspect(pid);
    if (!t) throw new Error(`pid ${pid} exited before profiling started`);
    targets.set(pid, t);
    contexts.set(pid, t.ctx);
  }

  const unwindMode = opts.unwind ?? 'cfi';
  const session = openNativeSession(bpfObjectPath(), log.isLevelEnabled('trace'), opts.btfPath);
  const symbolizer = new ProcessSymbolizer(contexts, opts.kernelStacks ? readKallsyms() : EMPTY_KERNEL_SYMBOLS, opts.lines ?? 'definition');
  const stats = emptyStats();
  let active = 0;

  // Counts arrive by stack id; a stack is copied out of the kernel once,
  // then its id goes into `known` so the kernel stops copying it. While
  // sampling, a new stack gets only what cannot wait: the names of its Lua
  // functions, read from the live process (the GC may free a prototype).
  // Its native frames and C functions are named, and every stack folded,
  // after sampling: each drain's CPU time is taken from the target, the
  // report's is not.
  const counted = new Map<bigint, CountedStack>();
  const knownInKernel = new Set<bigint>();
  let lostWithoutStack = 0;
  let samplesSoFar = 0;
  const drain = (mapName: string) => {
    // Counts maps: 8-byte stack ids, 8-byte counts.
    const { keys: ids, values } = session.mapDrain(mapName);
    for (let off = 0; off + 8 <= ids.length; off += 8) {
      const count = Number(values.readBigUInt64LE(off));
      const id = ids.readBigUInt64LE(off);
      let entry = counted.get(id);
      const idBuf = ids.subarray(off, off + 8);
      if (!entry) {
        const raw = session.mapLookup('stacks', idBuf);
        if (!raw) {
          // The kernel writes the stack before its first count, so this
          // cannot happen short of a bug: count it rather than hide it.
          lostWithoutStack += count;
          continue;
        }
        const key = decodeSampleKey(raw);
        entry = { key, luaNames: key.flags & SampleFlags.InLua ? symbolizer.liveLuaFrames(key) : [], count: 0 };
        counted.set(id, entry);
      }
      if (!knownInKernel.has(id)) forgetStack(idBuf, id);
      entry.count += count;
      samplesSoFar += count;
    }
  };
  // After sampling: name the native frames and fold.
  const foldCounted = () => {
    const aggregate = new Map<string, number>();
    for (const entry of counted.values()) {
      const stack = assembleStack(entry.key, {
        kernel: (addr) => symbolizer.kernel(addr),
        user: (pid, addr) => symbolizer.user(pid, addr),
        luaFrames: () => symbolizer.nameCFunctions(entry.key.pid, entry.luaNames),
      });
      const text = stack.frames.join(';');
      aggregate.set(text, (aggregate.get(text) ?? 0) + entry.count);
      countKey(stats, entry.key, entry.count, stack.nativeCutShort);
    }
    return aggregate;
  };
  // Known first, then delete: the kernel never lacks the stack of an id
  // user space has not named. When `known` is full the stack copy stays
  // and is deleted again at each drain that sees the id.
  const forgetStack = (idBuf: Buffer, id: bigint) => {
    if (knownInKernel.size < KNOWN_STACKS_MAX) {
      try {
        session.mapUpdate('known', idBuf, KNOWN_VALUE);
        knownInKernel.add(id);
      } catch {
        // Full: fall through to the delete.
      }
    }
    session.mapDelete('stacks', idBuf);
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

  let started = Date.now();
  try {
    session.setRodata(encodeConfig({ kernelStacks: opts.kernelStacks, leafPc: opts.lines === 'current', unwindCfi: unwindMode === 'cfi' }));
    const maxStacks = opts.maxStacks ?? DEFAULT_MAX_STACKS;
    if (!Number.isInteger(maxStacks) || maxStacks < 1 || maxStacks > MAX_STACKS_LIMIT) throw new RangeError(`maxStacks must be a whole number from 1 to ${MAX_STACKS_LIMIT}`);
    for (const map of [...COUNTS_MAPS, 'stacks']) session.setMaxEntries(map, maxStacks);
    loadBpfObject(session, log);
    const loader = unwindMode === 'cfi' ? new UnwindLoader(session) : null;
    tables.forEach((t, i) => session.mapUpdate('lj_tables', u32Key(i), encodeLjOffsets(t.offsets)));
    // Everything one target needs in the kernel: its unwind mappings, its
    // state entry, and uprobes to learn its global_State.
    const attach = (pid: number, t: Target) => {
      if (loader) t.unwindMappings = loader.addProcess(pid, t.ctx.maps);
      symbolizer.preload(pid);
      session.mapUpdate('procs', u32Key(pid), encodeProcState({ L: 0n, dispatch: 0n, g: 0n, vmLo: 0n, vmHi: 0n, table: t.candidates.length > 0 ? MAX_LJ_TABLES : PROC_NO_LUAJIT, uprobeHits: 0, stackWords: [] }));
      if (t.luajit && t.candidates.length > 0) {
        for (const probe of t.luajit.probeOffsets) {
          t.uprobeLinks.push(session.attachUprobe('learn_global_state', pid, t.luajit.hostPath, Number(probe.fileOffset)));
        }
        log.debug({ target: pid, luajit: t.luajit.path, candidates: t.candidates.map(tableName), probes: t.luajit.probeOffsets.length }, 'uprobes attached');
      }
    };
    const loadStart = Date.now();
    for (const [pid, t] of [...targets]) {
      try {
        attach(pid, t);
      } catch (err) {
        // A worker replaced (nginx reload) while we attached: go on without it.
        if (existsSync(`/proc/${pid}`)) throw err;
        log.warn({ target: pid }, `pid ${pid} exited while the profiler attached`);
        targets.delete(pid);
      }
    }
    // Unless new ones can join (a master's next workers), there is nothing to sample.
    if (targets.size === 0 && !opts.discover) throw new CliError('every target process exited before sampling started', ExitCode.TargetNotFound);
    if (loader) {
      log.debug(
        { files: loader.report.files, rows: loader.report.rows, skipped: Object.fromEntries(loader.report.skipped), ms: Date.now() - loadStart },
        'unwind tables loaded',
      );
    }
    // Processes that appear while we sample (nginx reload replaces workers).
    const discover = () => {
      for (const pid of opts.discover?.() ?? []) {
        if (targets.has(pid) || targets.size >= MAX_PROCS) continue;
        const t = inspect(pid);
        if (!t) continue;
        targets.set(pid, t);
        contexts.set(pid, t.ctx);
        try {
          attach(pid, t);
          log.info({ target: pid }, `pid ${pid} joined the profile`);
        } catch (err) {
          // It may have exited while we attached: keep what we have.
          log.warn({ target: pid }, `pid ${pid}: could not attach (${(err as Error).message})`);
        }
      }
    };
    quietForSampling();
    const cpus = session.attachPerfEvent('sample_stack', opts.frequency);
    log.info({ targets: [...targets.keys()], cpus: cpus.length, frequency: opts.frequency, durationSec: opts.durationSec }, 'sampling');
    opts.onPhase?.('sampling');

    // The duration counts from here: attaching can take a while.
    started = Date.now();
    const deadline = started + opts.durationSec * 1000;
    let lastDrain = Date.now();
    while (Date.now() < deadline && !opts.signal?.aborted) {
      // Poll fast until every process's global_State is known: until then
      // its requests pay for the uprobe and its VM range is not set.
      // Otherwise wake only to drain: every wake-up is CPU taken from the target.
      const pending = [...targets.values()].some((t) => !t.gKnown && t.candidates.length > 0);
      const untilDrain = lastDrain + DRAIN_EVERY_MS - Date.now();
      await sleep(Math.max(1, Math.min(pending ? FAST_POLL_MS : untilDrain, deadline - Date.now())), opts.signal);
      learnGlobalStates(session, targets, tables, log);
      if (Date.now() - lastDrain >= DRAIN_EVERY_MS) {
        discover();
        await flipAndDrain();
        lastDrain = Date.now();
        opts.onProgress?.(samplesSoFar);
      }
    }
    endQuiet();
    stats.elapsedSec = (Date.now() - started) / 1000;
    for (const [pid, t] of targets) {
      if (t.luajit && !t.gKnown) {
        log.warn(
          { target: pid, luajit: t.luajit.path, tried: t.candidates.map(tableName) },
          `pid ${pid}: LuaJIT at ${t.luajit.path} was not seen running, or no known layout matches it: its samples have C frames only`,
        );
      }
    }
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
    stats.lostMapFull = counters[StatIndex.LostMapFull] + lostWithoutStack;
    stats.lostNoMemory = counters[StatIndex.LostNoMemory];
    stats.luaBadReads = counters[StatIndex.LuaBadRead];
    stats.uprobeHits = counters[StatIndex.UprobeHits];
  } finally {
    endQuiet();
    session.close();
    for (const ctx of contexts.values()) ctx.mem?.close();
  }
  const aggregate = foldCounted();
  const stacks = [...aggregate].map(([text, count]) => ({ frames: text === '' ? [] : text.split(';'), count }));
  return { stacks, stats, targets: [...targets].map(([pid, t]) => targetOutcome(pid, t)) };
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
