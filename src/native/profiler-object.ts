// The BPF object of bpf/profiler.bpf.c as typed operations, the way a
// libbpf skeleton names them: every map and program name the user-space side
// uses is in this file, and every value crosses through the encoders of
// abi.ts. Callers never see a map name or a raw buffer layout.
import {
  decodeOffCpuThread,
  decodeProcState,
  decodeRequestUriState,
  decodeSampleKey,
  decodeUriLabel,
  encodeConfig,
  encodeLjOffsets,
  encodeOffCpuThread,
  encodeProcMappings,
  encodeProcState,
  encodeRequestUriState,
  OFFCPU_THREAD_SIZE,
  targetPidBit,
  type ExecMapping,
  type OffCpuThread,
  type ProcState,
  type RequestUriState,
  type SampleKey,
  STAT_COUNT,
  u32Key,
} from './abi.js';
import { type NativeProgramInfo, type NativeSession, openNativeSession } from './addon.js';

const PROGRAM = { learnGlobalState: 'learn_global_state', sampleStack: 'sample_stack', offCpuSwitch: 'offcpu_switch' } as const;
const MAP = {
  procs: 'procs',
  ljTables: 'lj_tables',
  counts: ['counts0', 'counts1'],
  stacks: 'stacks',
  known: 'known',
  control: 'control',
  stats: 'stats',
  unwindRows: 'unwind_rows',
  procMaps: 'proc_maps',
  offCpuThreads: 'offcpu_threads',
  targetPids: 'target_pids',
  requestUris: 'request_uris',
  uriLabels: 'uri_labels',
} as const;

/**
 * What a profile measures, and so which programs it loads: CPU samples
 * (the perf event program), time off the CPU (the scheduler switch
 * program), or both (wall clock). A program a mode does not use is not
 * loaded, so it costs neither verification nor a hook.
 */
export type ProfileMode = 'cpu' | 'off-cpu' | 'wall';

const KNOWN_VALUE = Buffer.from([1]);

/** What changes what the kernel verifies and sizes the maps: set before load. */
export interface ProfilerConfig {
  kernelStacks: boolean;
  /** Record the leaf Lua frame's position (--lines current). */
  leafPc: boolean;
  /** Native frames from .eh_frame rows; else frame pointers. */
  unwindCfi: boolean;
  /** Unique stacks the counts and stacks maps hold between two drains. */
  maxStacks?: number;
  /** Default 'cpu'. */
  mode?: ProfileMode;
  /** Label samples with their request's URI (--label uri). */
  uriLabels?: boolean;
}

/** A drained counts map: stack ids and their counts, 8 bytes each, entry i at i*8. */
export interface DrainedCounts {
  ids: Buffer;
  counts: Buffer;
}

export class ProfilerObject {
  private active = 0;
  private offCpu = false;
  /** The pids whose bit is set in target_pids. */
  private readonly targetPids = new Set<number>();

  private constructor(private readonly session: NativeSession) {}

  /** Opens the object file (not loaded yet). verbose: libbpf's own log on stderr. */
  static open(objectPath: string, opts: { verbose?: boolean; btfPath?: string } = {}): ProfilerObject {
    return new ProfilerObject(openNativeSession(objectPath, opts.verbose ?? false, opts.btfPath));
  }

  configure(cfg: ProfilerConfig): void {
    this.session.setRodata(encodeConfig(cfg));
    if (cfg.maxStacks !== undefined) {
      for (const map of [...MAP.counts, MAP.stacks]) this.session.setMaxEntries(map, cfg.maxStacks);
    }
    const mode = cfg.mode ?? 'cpu';
    this.offCpu = mode !== 'cpu';
    // Only the switch program reads the bitmap: no 512 KiB for CPU mode.
    if (!this.offCpu) this.session.setMaxEntries(MAP.targetPids, 1);
    this.session.setAutoload(PROGRAM.sampleStack, mode !== 'off-cpu');
    this.session.setAutoload(PROGRAM.offCpuSwitch, mode !== 'cpu');
  }

  /** Loads every program (fullLog: keep the verifier's whole log). */
  load(fullLog = false): void {
    this.session.load(fullLog);
  }

  /** What the verifier said of each program, also after a failed load. */
  programs(): NativeProgramInfo[] {
    return this.session.programs();
  }

  /** The offset tables, by index (proc_state.table refers to them). */
  setOffsetTables(tables: readonly Record<string, number>[]): void {
    tables.forEach((offsets, i) => this.session.mapUpdate(MAP.ljTables, u32Key(i), encodeLjOffsets(offsets)));
  }

  setProcessState(pid: number, state: ProcState): void {
    this.session.mapUpdate(MAP.procs, u32Key(pid), encodeProcState(state));
    if (this.offCpu) this.setTargetPidBit(pid, true);
  }

  /** null once the process is no longer a target. */
  processState(pid: number): ProcState | null {
    const raw = this.session.mapLookup(MAP.procs, u32Key(pid));
    return raw ? decodeProcState(raw) : null;
  }

  /** Stops sampling pid: the program ignores processes it has no state for. */
  forgetProcess(pid: number): void {
    this.session.mapDelete(MAP.procs, u32Key(pid));
    if (this.offCpu) this.setTargetPidBit(pid, false);
  }

  /** The switch program's test of pid (target_pids); user space is the only writer of the words. */
  private setTargetPidBit(pid: number, on: boolean): void {
    if (this.targetPids.has(pid) === on) return;
    if (on) this.targetPids.add(pid);
    else this.targetPids.delete(pid);
    const { word, mask } = targetPidBit(pid);
    const raw = this.session.mapLookup(MAP.targetPids, u32Key(word));
    const bits = raw ? raw.readBigUInt64LE(0) : 0n;
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(on ? bits | mask : bits & ~mask, 0);
    this.session.mapUpdate(MAP.targetPids, u32Key(word), value);
  }

  /** --label uri: where pid's requests keep their URI (the kernel reads it from then on). */
  setRequestUriState(pid: number, state: RequestUriState): void {
    this.session.mapUpdate(MAP.requestUris, u32Key(pid), encodeRequestUriState(state));
  }

  /** null when pid has no entry (not labelled). */
  requestUriState(pid: number): RequestUriState | null {
    const raw = this.session.mapLookup(MAP.requestUris, u32Key(pid));
    return raw ? decodeRequestUriState(raw) : null;
  }

  /** --label uri: every label id the kernel has seen and its URI path. */
  uriLabels(): Map<number, string> {
    return new Map(this.session.mapEntries(MAP.uriLabels).map(([k, v]) => [k.readUInt32LE(0), decodeUriLabel(v)]));
  }

  /** An uprobe that learns a lua_State: at fileOffset of binaryPath, for pid. Returns a link id. */
  attachLuaStateProbe(pid: number, binaryPath: string, fileOffset: number): number {
    return this.session.attachUprobe(PROGRAM.learnGlobalState, pid, binaryPath, fileOffset);
  }

  detach(link: number): void {
    this.session.detach(link);
  }

  /** One sampling event per online CPU; returns those CPUs. */
  startSampling(frequencyHz: number): number[] {
    return this.session.attachPerfEvent(PROGRAM.sampleStack, frequencyHz);
  }

  /** The scheduler switch program (off-CPU and wall modes): one hook for every CPU. Returns a link id. */
  startOffCpu(): number {
    return this.session.attachTracing(PROGRAM.offCpuSwitch);
  }

  /**
   * A thread off the CPU since startNs (CLOCK_MONOTONIC), counted under id
   * when it comes back: for threads already blocked before the switch
   * program is attached (src/profile/blocked-at-start.ts).
   */
  seedOffCpuThread(tid: number, startNs: bigint, id: bigint): void {
    this.session.mapUpdate(MAP.offCpuThreads, u32Key(tid), encodeOffCpuThread(startNs, id));
  }

  /**
   * Every target thread's entry (read and deleted): at the end of a run,
   * the time of threads still off the CPU and the idle time the kernel
   * summed in place are still to be added to the counts.
   */
  drainOffCpuThreads(): OffCpuThread[] {
    const { keys, values } = this.session.mapDrain(MAP.offCpuThreads);
    const out: OffCpuThread[] = [];
    for (let i = 0; i * 4 < keys.length; i++) {
      out.push(decodeOffCpuThread(keys.subarray(i * 4, i * 4 + 4), values.subarray(i * OFFCPU_THREAD_SIZE, (i + 1) * OFFCPU_THREAD_SIZE)));
    }
    return out;
  }

  /** Switches the programs to the other counts map; returns the one to drain. */
  flipCounts(): number {
    const old = this.active;
    this.active = 1 - old;
    this.session.mapUpdate(MAP.control, u32Key(0), u32Key(this.active));
    return old;
  }

  /** Every entry of counts map `index`, read and deleted. Only for the map the programs are not adding to. */
  drainCounts(index: number): DrainedCounts {
    const { keys, values } = this.session.mapDrain(MAP.counts[index]);
    return { ids: keys, counts: values };
  }

  /** The stack an id stands for; null when the kernel holds no copy. */
  stack(id: Buffer): SampleKey | null {
    const raw = this.session.mapLookup(MAP.stacks, id);
    return raw ? decodeSampleKey(raw) : null;
  }

  /** Tells the programs the id is named, so they stop copying its stack; false when `known` is full. */
  markKnown(id: Buffer): boolean {
    try {
      this.session.mapUpdate(MAP.known, id, KNOWN_VALUE);
      return true;
    } catch {
      return false;
    }
  }

  dropStack(id: Buffer): void {
    this.session.mapDelete(MAP.stacks, id);
  }

  /** The per-CPU counters of `stats`, summed over CPUs, by StatIndex. */
  stats(): number[] {
    const totals: number[] = [];
    for (let i = 0; i < STAT_COUNT; i++) {
      const value = this.session.mapLookup(MAP.stats, u32Key(i));
      let sum = 0n;
      if (value) for (let off = 0; off + 8 <= value.length; off += 8) sum += value.readBigUInt64LE(off);
      totals.push(Number(sum));
    }
    return totals;
  }

  /** Writes encoded unwind rows at index first, first+1, ... */
  loadUnwindRows(first: number, rows: Buffer): void {
    this.session.mapFillArray(MAP.unwindRows, first, rows);
  }

  /** A process's executable mappings and where their rows are; generation retires cached rows. */
  setProcessMappings(pid: number, mappings: readonly ExecMapping[], generation: number): void {
    this.session.mapUpdate(MAP.procMaps, u32Key(pid), encodeProcMappings(mappings, generation));
  }

  /** Detaches everything and closes the object. Idempotent. */
  close(): void {
    this.session.close();
  }
}
