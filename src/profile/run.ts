// One profiling run, start to finish: load BPF, attach the targets, learn
// each process's global_State through uprobes (then drop them), sample on
// every CPU, drain the kernel's counts while the run goes on, and turn them
// into stacks. Everything attached is released on every path, including
// errors. The BPF object is reached through ProfilerObject, the stacks
// through StackTable.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, ExitCode } from '../errors.js';
import type { Logger } from 'pino';
import { findLuajit } from '../luajit/detect.js';
import { type LuajitTable, loadOffsetTables, tableName } from '../luajit/offset-tables.js';
import { MAX_LJ_TABLES, MAX_PROCS, PROC_NO_LUAJIT, StatIndex } from '../native/abi.js';
import { ProfilerObject } from '../native/profiler-object.js';
import { packageRoot } from '../package-root.js';
import type { LineMode } from '../luajit/lua-frames.js';
import type { UniqueStacks } from '../report/stack.js';
import { EMPTY_KERNEL_SYMBOLS, readKallsyms } from '../symbolize/kallsyms.js';
import { type ProcessContext, ProcessSymbolizer } from '../symbolize/process-symbolizer.js';
import { readProcMaps } from '../target/proc-maps.js';
import { cpuTimeMs } from '../target/processes.js';
import { openProcessMemory } from '../target/process-memory.js';
import { assembleStack } from './assemble.js';
import { offCpuLeftInThreads } from './offcpu-threads.js';
import { blockedAtStartFrames, blockedAtStartId, blockedAtStartKey, blockedThreads } from './blocked-at-start.js';
import { endQuiet, quietForSampling } from './quiet-runtime.js';
import { learnGlobalStates, type Target, type TargetOutcome, tablesFor, targetOutcome } from './global-state.js';
import { countKey, emptyStats, type RunStats } from './stats.js';
import { StackTable } from './stack-table.js';
import { emptyOffCpuTotals, placeStack, type ProfileMode, stackWeight } from './weights.js';
import { TableSlots } from './table-slots.js';
import { UnwindLoader } from '../unwind/loader.js';
import { RequestUriLabels } from './request-uris.js';
import { DEFAULT_MAX_LABELS, labelNames, uriFrame } from '../report/uris.js';
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
  /** CPU samples (default), time blocked off the CPU, or both as time (src/profile/weights.ts). */
  mode?: ProfileMode;
  /** Off-CPU and wall modes: keep the event loop's idle wait in the stacks (under [idle]). */
  includeIdle?: boolean;
  /** --label uri: each sample taken for a request gets its URI path as its first frame (`[uri:/api]`). */
  labelUri?: boolean;
  /** --max-labels: distinct URIs kept (most sampled first), the rest `[uri:[other]]`. */
  maxLabels?: number;
}


export type { RunStats } from './stats.js';

export interface RunResult {
  /** Merged once (StackTable.fold); every output takes them as they are. */
  stacks: UniqueStacks;
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

export function bpfObjectPath(): string {
  return join(packageRoot(), 'build', 'bpf', 'profiler.bpf.o');
}

export async function runProfile(opts: RunOptions): Promise<RunResult> {
  const run = new ProfileRun(opts);
  try {
    run.load();
    run.attachAll();
    await run.sample();
    await run.stop();
  } finally {
    run.close();
  }
  return run.result();
}

/** One run's state, each step a method, in the order runProfile calls them. */
class ProfileRun {
  private readonly log: Logger;
  private readonly tables: LuajitTable[];
  private readonly maxStacks: number;
  private readonly unwindCfi: boolean;
  private readonly mode: ProfileMode;
  private readonly targets = new Map<number, Target>();
  private readonly contexts = new Map<number, ProcessContext>();
  private readonly bpf: ProfilerObject;
  private readonly symbolizer: ProcessSymbolizer;
  private readonly table: StackTable;
  private readonly stats = emptyStats();
  private loader: UnwindLoader | null = null;
  private slots: TableSlots | null = null;
  private cpuAtStart = new Map<number, number | null>();
  private readonly uris: RequestUriLabels | null;
  private readonly uriTargets = new Set<number>();
  /** --label uri: the kernel's labels, read before the object is closed. */
  private uriPaths = new Map<number, string>();

  constructor(private readonly opts: RunOptions) {
    this.log = opts.log;
    this.tables = loadOffsetTables();
    this.maxStacks = opts.maxStacks ?? DEFAULT_MAX_STACKS;
    if (!Number.isInteger(this.maxStacks) || this.maxStacks < 1 || this.maxStacks > MAX_STACKS_LIMIT) {
      throw new RangeError(`maxStacks must be a whole number from 1 to ${MAX_STACKS_LIMIT}`);
    }
    for (const pid of opts.pids) {
      const t = inspectTarget(pid, this.tables, this.log);
      if (!t) throw new Error(`pid ${pid} exited before profiling started`);
      this.addTarget(pid, t);
    }
    this.unwindCfi = (opts.unwind ?? 'cfi') === 'cfi';
    this.mode = opts.mode ?? 'cpu';
    this.bpf = ProfilerObject.open(bpfObjectPath(), { verbose: this.log.isLevelEnabled('trace'), btfPath: opts.btfPath });
    this.symbolizer = new ProcessSymbolizer(this.contexts, opts.kernelStacks ? readKallsyms() : EMPTY_KERNEL_SYMBOLS, opts.lines ?? 'definition');
    this.table = new StackTable(this.bpf, (key) => this.symbolizer.liveLuaFrames(key));
    this.uris = opts.labelUri ? new RequestUriLabels(this.bpf, this.log) : null;
  }

  /** Configures and loads the BPF object; fills the offset tables. */
  load(): void {
    const { opts } = this;
    this.bpf.configure({ kernelStacks: opts.kernelStacks, leafPc: opts.lines === 'current', unwindCfi: this.unwindCfi, maxStacks: this.maxStacks, mode: this.mode, uriLabels: this.uris !== null });
    loadBpfObject(this.bpf, this.log);
    this.slots = new TableSlots(this.bpf);
    this.loader = this.unwindCfi ? new UnwindLoader(this.bpf) : null;
  }

  /** Everything each target needs in the kernel; a worker gone meanwhile (a reload) is left out. */
  attachAll(): void {
    const loadStart = Date.now();
    for (const [pid, t] of [...this.targets]) {
      try {
        this.attach(pid, t);
      } catch (err) {
        if (existsSync(`/proc/${pid}`)) throw err;
        this.log.warn({ target: pid }, `pid ${pid} exited while the profiler attached`);
        this.targets.delete(pid);
      }
    }
    // Unless new ones can join (a master's next workers), there is nothing to sample.
    if (this.targets.size === 0 && !this.opts.discover) throw new CliError('every target process exited before sampling started', ExitCode.TargetNotFound);
    const { loader } = this;
    if (loader) {
      this.log.debug(
        { files: loader.report.files, rows: loader.report.rows, skipped: Object.fromEntries(loader.report.skipped), ms: Date.now() - loadStart },
        'unwind tables loaded',
      );
    }
  }

  /** Samples for the duration (or until aborted), learning global_States and draining as it goes. */
  async sample(): Promise<void> {
    const { opts, log } = this;
    quietForSampling();
    const cpus = this.mode === 'off-cpu' ? [] : this.bpf.startSampling(opts.frequency);
    if (this.mode !== 'cpu') {
      this.seedBlockedThreads();
      this.bpf.startOffCpu();
    }
    log.info({ targets: [...this.targets.keys()], mode: this.mode, cpus: cpus.length, frequency: opts.frequency, durationSec: opts.durationSec }, 'sampling');
    opts.onPhase?.('sampling');
    // The duration counts from here: attaching can take a while.
    const started = Date.now();
    this.cpuAtStart = new Map([...this.targets.keys()].map((pid) => [pid, cpuTimeMs(pid)]));
    const deadline = started + opts.durationSec * 1000;
    let lastDrain = Date.now();
    while (Date.now() < deadline && !opts.signal?.aborted) {
      // Poll fast until every process's global_State is known: until then
      // its requests pay for the uprobe and its VM range is not set.
      // Otherwise wake only to drain: every wake-up is CPU taken from the target.
      const pending = [...this.targets.values()].some((t) => !t.gKnown && t.candidates.length > 0) || (this.uris?.pending ?? false);
      const untilDrain = lastDrain + DRAIN_EVERY_MS - Date.now();
      await sleep(Math.max(1, Math.min(pending ? FAST_POLL_MS : untilDrain, deadline - Date.now())), opts.signal);
      learnGlobalStates(this.bpf, this.targets, this.slots!, log);
      this.learnRequestUris();
      if (Date.now() - lastDrain >= DRAIN_EVERY_MS) {
        this.discover();
        await this.flipAndDrain();
        lastDrain = Date.now();
        opts.onProgress?.(this.table.samples);
      }
    }
    endQuiet();
    this.stats.elapsedSec = (Date.now() - started) / 1000;
  }

  /**
   * Off-CPU and wall modes: threads of the targets that are blocked now
   * count from now, under the stack /proc shows of them, until they first
   * come back (src/profile/blocked-at-start.ts). Before the switch program
   * is attached, so no entry of its own is overwritten.
   */
  private seedBlockedThreads(): void {
    let seeded = 0;
    for (const pid of this.targets.keys()) {
      for (const t of blockedThreads(pid)) {
        const id = blockedAtStartId(t.tid);
        this.table.preset(id, { key: blockedAtStartKey(pid, t), luaNames: [], blockedAtStart: t });
        this.bpf.seedOffCpuThread(t.tid, process.hrtime.bigint(), id);
        seeded++;
      }
    }
    this.log.debug({ threads: seeded }, 'threads already blocked at the start: counted from now, their stacks as /proc shows them');
  }

  /** Stops counting, drains what is left, and reads the kernel's counters. */
  async stop(): Promise<void> {
    const { stats, log } = this;
    stats.targetCpuMs = [...this.cpuAtStart].reduce((sum, [pid, at]) => sum + Math.max(0, (cpuTimeMs(pid) ?? at ?? 0) - (at ?? 0)), 0);
    warnUnlearned(this.targets, log);
    this.opts.onPhase?.('stopped');
    log.info({ elapsedSec: stats.elapsedSec }, 'sampling stopped');
    // The program ignores processes it has no state for; then both maps are
    // drained, so the totals match the kernel's own counters.
    for (const pid of this.targets.keys()) this.bpf.forgetProcess(pid);
    await sleep(5);
    this.table.add(this.bpf.drainCounts(0));
    this.table.add(this.bpf.drainCounts(1));
    if (this.mode !== 'cpu') this.table.add(offCpuLeftInThreads(this.bpf.drainOffCpuThreads(), process.hrtime.bigint()));
    if (this.uris) {
      this.uris.finish();
      this.uriPaths = this.uris.labels();
    }
    const counters = this.bpf.stats();
    stats.samples = counters[StatIndex.Samples];
    stats.lostMapFull = counters[StatIndex.LostMapFull] + this.table.lostWithoutStack;
    stats.lostNoMemory = counters[StatIndex.LostNoMemory];
    stats.luaBadReads = counters[StatIndex.LuaBadRead];
    stats.uprobeHits = counters[StatIndex.UprobeHits];
    if (this.mode !== 'cpu') {
      stats.mode = this.mode;
      stats.offCpu = {
        ...emptyOffCpuTotals(),
        switchesBlocked: counters[StatIndex.SwitchesBlocked],
        switchesPreempted: counters[StatIndex.SwitchesPreempted],
        preemptedUs: Math.round(counters[StatIndex.PreemptedNs] / 1000),
        lost: counters[StatIndex.OffCpuLost] + counters[StatIndex.OffCpuInterrupted],
        idleReused: counters[StatIndex.OffCpuIdleReused],
      };
    }
  }

  /** Releases everything attached, whatever step failed. */
  close(): void {
    endQuiet();
    this.bpf.close();
    for (const ctx of this.contexts.values()) ctx.mem?.close();
  }

  /** After sampling: the native frames and the C functions among the Lua frames named, the stacks folded. */
  result(): RunResult {
    const { symbolizer, stats, mode } = this;
    const place = { mode, frequencyHz: this.opts.frequency, includeIdle: this.opts.includeIdle ?? false };
    const totals = stats.offCpu ?? emptyOffCpuTotals();
    const uriFrames = this.uriFrames();
    const stacks = this.table.fold((entry) => {
      const stack = entry.blockedAtStart
        ? { frames: blockedAtStartFrames(entry.blockedAtStart, (pc) => symbolizer.user(entry.key.pid, pc).name), nativeCutShort: false }
        : assembleStack(entry.key, {
            kernel: (addr) => symbolizer.kernel(addr),
            user: (pid, addr) => symbolizer.user(pid, addr),
            luaFrames: () => symbolizer.nameCFunctions(entry.key.pid, entry.luaNames),
          });
      const count = stackWeight(entry.key.flags, entry.count, place);
      countKey(stats, entry.key, count, stack.nativeCutShort);
      const frames = placeStack(stack.frames, entry.key.flags, count, place, totals);
      const uri = entry.key.label ? uriFrames.get(entry.key.label) : undefined;
      return frames ? { frames: uri ? [uri, ...frames] : frames, count } : null;
    });
    return { stacks, stats, targets: [...this.targets].map(([pid, t]) => targetOutcome(pid, t)) };
  }

  private addTarget(pid: number, t: Target): void {
    this.targets.set(pid, t);
    this.contexts.set(pid, t.ctx);
  }

  private attach(pid: number, t: Target): void {
    attachTarget(this.bpf, this.loader, this.symbolizer, pid, t, this.log);
  }

  /** --label uri: targets whose layout is now known get their kernel entry; offered requests are read. */
  private learnRequestUris(): void {
    const { uris } = this;
    if (!uris) return;
    for (const [pid, t] of this.targets) {
      if (!t.gKnown || !t.ctx.table || !t.luajit || this.uriTargets.has(pid)) continue;
      this.uriTargets.add(pid);
      uris.add(pid, t.ctx.table.offsets.L_exdata ?? -1, t.ctx.mem, t.luajit.path);
    }
    uris.poll();
  }

  /** --label uri: each label id's frame, --max-labels applied over the whole run. */
  private uriFrames(): Map<number, string> {
    if (!this.uris) return new Map();
    const samples = new Map<number, number>();
    for (const e of this.table.entries()) if (e.key.label) samples.set(e.key.label, (samples.get(e.key.label) ?? 0) + e.count);
    const names = labelNames(samples, this.uriPaths, this.opts.maxLabels ?? DEFAULT_MAX_LABELS);
    return new Map([...names].map(([id, path]) => [id, uriFrame(path)]));
  }

  /** Processes that appear while we sample (nginx reload replaces workers). */
  private discover(): void {
    for (const pid of this.opts.discover?.() ?? []) {
      if (this.targets.has(pid) || this.targets.size >= MAX_PROCS) continue;
      let t: Target | null;
      try {
        t = inspectTarget(pid, this.tables, this.log);
      } catch (err) {
        // A worker that runs a LuaJIT no table reads stays out; the others go on.
        if (!(err instanceof CliError)) throw err;
        this.log.warn({ target: pid }, `pid ${pid} left out: ${err.message}`);
        continue;
      }
      if (!t) continue;
      this.addTarget(pid, t);
      try {
        this.attach(pid, t);
        this.log.info({ target: pid }, `pid ${pid} joined the profile`);
      } catch (err) {
        // It may have exited while we attached: keep what we have.
        this.log.warn({ target: pid }, `pid ${pid}: could not attach (${(err as Error).message})`);
      }
    }
  }

  /**
   * Switches the programs to the other counts map, gives in-flight programs
   * time to finish with the old one, then drains it.
   */
  private async flipAndDrain(): Promise<void> {
    const old = this.bpf.flipCounts();
    await sleep(5);
    this.table.add(this.bpf.drainCounts(old));
  }
}

/** What a target needs from /proc: its maps and LuaJIT; null when it is already gone. */
function inspectTarget(pid: number, tables: LuajitTable[], log: Logger): Target | null {
  let maps;
  try {
    maps = readProcMaps(pid);
  } catch {
    return null;
  }
  const luajit = findLuajit(pid, maps);
  if (!luajit) log.warn({ target: pid }, `pid ${pid} has no LuaJIT mapped: profiling C frames only`);
  const candidates = luajit ? tablesFor(pid, luajit, tables, log) : [];
  const ctx: ProcessContext = {
    pid,
    maps,
    mem: luajit ? openProcessMemory(pid) : null,
    table: null,
    luajitPath: luajit?.path ?? null,
    vm: null,
    g: null,
  };
  return { ctx, luajit, candidates, uprobeLinks: [], gKnown: false };
}

/** Everything one target needs in the kernel: its unwind mappings, its state, uprobes to learn its global_State. */
function attachTarget(bpf: ProfilerObject, loader: UnwindLoader | null, symbolizer: ProcessSymbolizer, pid: number, t: Target, log: Logger): void {
  if (loader) t.unwindMappings = loader.addProcess(pid, t.ctx.maps);
  symbolizer.preload(pid);
  bpf.setProcessState(pid, { L: 0n, dispatch: 0n, g: 0n, vmLo: 0n, vmHi: 0n, table: t.candidates.length > 0 ? MAX_LJ_TABLES : PROC_NO_LUAJIT, uprobeHits: 0, stackWords: [] });
  if (t.luajit && t.candidates.length > 0) {
    for (const probe of t.luajit.probeOffsets) t.uprobeLinks.push(bpf.attachLuaStateProbe(pid, t.luajit.hostPath, Number(probe.fileOffset)));
    log.debug({ target: pid, luajit: t.luajit.path, candidates: t.candidates.map(tableName), probes: t.luajit.probeOffsets.length }, 'uprobes attached');
  }
}

function warnUnlearned(targets: Map<number, Target>, log: Logger): void {
  for (const [pid, t] of targets) {
    if (t.luajit && !t.gKnown) {
      log.warn(
        { target: pid, luajit: t.luajit.path, tried: t.candidates.map(tableName) },
        `pid ${pid}: LuaJIT at ${t.luajit.path} was not seen running, or no known layout matches it: its samples have C frames only`,
      );
    }
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
