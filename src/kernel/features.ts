// What this host offers the profiler: privileges, kernel release, BTF, the
// bpf() syscall, perf events, uprobes, tracefs. Reading is one IO function
// (readHost); judging the readings is pure (the check* functions), so the
// `doctor` command and the `profile` command's start-up check share it and
// tests can feed it any host.
//
// APISIX_PROFILE_HIDE_FEATURES (for tests only): a comma list of feature
// names (HIDEABLE_FEATURES) that the readings then report as absent.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { CliError, ExitCode } from '../errors.js';
import { atLeast, formatVersion, MIN_KERNEL, missingOn, parseRelease } from './min-kernel.js';

export const HIDE_ENV = 'APISIX_PROFILE_HIDE_FEATURES';

const HIDEABLE_FEATURES = ['root', 'kernel', 'btf', 'bpf', 'perf-events', 'uprobes', 'tracefs', 'docker'] as const;
export type HideableFeature = (typeof HIDEABLE_FEATURES)[number];

export const DEFAULT_BTF = '/sys/kernel/btf/vmlinux';
const SOFTWARE_PMU = '/sys/bus/event_source/devices/software';
const HARDWARE_PMU = '/sys/bus/event_source/devices/cpu';
export const UPROBE_PMU_TYPE = '/sys/bus/event_source/devices/uprobe/type';
export const PERF_EVENT_PARANOID = '/proc/sys/kernel/perf_event_paranoid';
/** Exists exactly when the kernel has the bpf() syscall (CONFIG_BPF_SYSCALL). */
export const BPF_SYSCTL = '/proc/sys/kernel/unprivileged_bpf_disabled';
export const TRACEFS_DIRS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'] as const;

/** Capability bits (linux/capability.h). */
export const Cap = { DAC_OVERRIDE: 1, SYS_PTRACE: 19, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;

/** The names in APISIX_PROFILE_HIDE_FEATURES; an unknown name is an error (a typo would hide nothing). */
export function hiddenFeatures(env: NodeJS.ProcessEnv = process.env): Set<HideableFeature> {
  const raw = env[HIDE_ENV] ?? '';
  const names = raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  const unknown = names.filter((n) => !(HIDEABLE_FEATURES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new CliError(`${HIDE_ENV}: unknown feature ${unknown.join(', ')} (known: ${HIDEABLE_FEATURES.join(', ')})`, ExitCode.BadArguments);
  }
  return new Set(names as HideableFeature[]);
}

export interface HostReadings {
  uid: number;
  /** CapEff from /proc/self/status; null when unreadable. */
  capEff: bigint | null;
  /** uname -r; null when hidden. */
  release: string | null;
  btf: { path: string; isDefault: boolean; present: boolean; bytes: number | null };
  bpfSyscall: boolean;
  /** /proc/sys/kernel/perf_event_paranoid; null when absent (no perf events). */
  perfEventParanoid: number | null;
  softwarePmu: boolean;
  hardwarePmu: boolean;
  /** The uprobe PMU's type number; null when the kernel has none. */
  uprobePmuType: number | null;
  /** Where tracefs is mounted; null when it is not. */
  tracefs: string | null;
  hidden: ReadonlySet<HideableFeature>;
}

/** CapEff (hex) from /proc/<pid>/status text. */
export function parseCapEff(status: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : null;
}

export function hasCap(capEff: bigint | null, bit: number): boolean {
  return capEff !== null && ((capEff >> BigInt(bit)) & 1n) === 1n;
}

/** The mount point of the first tracefs in /proc/self/mounts text. */
export function tracefsMount(mounts: string): string | null {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f.length >= 3 && f[2] === 'tracefs') return f[1].replace(/\\040/g, ' ');
  }
  return null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Reads the host (the hide seam applied). */
export function readHost(opts: { btfPath?: string; env?: NodeJS.ProcessEnv } = {}): HostReadings {
  const hidden = hiddenFeatures(opts.env ?? process.env);
  const btfPath = opts.btfPath ?? DEFAULT_BTF;
  let btfBytes: number | null = null;
  try {
    btfBytes = statSync(btfPath).size;
  } catch {
    btfBytes = null;
  }
  const paranoid = readText(PERF_EVENT_PARANOID);
  const uprobeType = readText(UPROBE_PMU_TYPE);
  let tracefs = tracefsMount(readText('/proc/self/mounts') ?? '');
  if (!tracefs) tracefs = TRACEFS_DIRS.find((d) => existsSync(`${d}/trace`)) ?? null;
  const readings: HostReadings = {
    uid: process.getuid?.() ?? -1,
    capEff: parseCapEff(readText('/proc/self/status') ?? ''),
    release: osRelease(),
    btf: { path: btfPath, isDefault: btfPath === DEFAULT_BTF, present: btfBytes !== null, bytes: btfBytes },
    bpfSyscall: existsSync(BPF_SYSCTL),
    perfEventParanoid: paranoid !== null && /^-?\d+\s*$/.test(paranoid) ? Number(paranoid.trim()) : null,
    softwarePmu: existsSync(SOFTWARE_PMU),
    hardwarePmu: existsSync(HARDWARE_PMU),
    uprobePmuType: uprobeType !== null && /^\d+\s*$/.test(uprobeType) ? Number(uprobeType.trim()) : null,
    tracefs,
    hidden,
  };
  return hideFeatures(readings, hidden);
}

/** The readings as if the hidden features were absent. Pure. */
export function hideFeatures(r: HostReadings, hidden: ReadonlySet<HideableFeature>): HostReadings {
  const out: HostReadings = { ...r, btf: { ...r.btf }, hidden };
  if (hidden.has('root')) {
    out.uid = 65534;
    out.capEff = 0n;
  }
  if (hidden.has('kernel')) out.release = null;
  if (hidden.has('btf')) out.btf = { ...out.btf, present: false, bytes: null };
  if (hidden.has('bpf')) out.bpfSyscall = false;
  if (hidden.has('perf-events')) {
    out.softwarePmu = false;
    out.hardwarePmu = false;
    out.perfEventParanoid = null;
  }
  if (hidden.has('uprobes')) out.uprobePmuType = null;
  if (hidden.has('tracefs')) out.tracefs = null;
  return out;
}

export type CheckLevel = 'pass' | 'warn' | 'fail' | 'skip';

/** One line of `doctor`; a failed check also makes the `profile` command's one-line error. */
export interface Check {
  id: string;
  level: CheckLevel;
  summary: string;
  /** What to do about it (warnings and failures). */
  fix?: string;
  details?: Record<string, unknown>;
  /** For a failure: the exit code it stands for. */
  exitCode?: number;
  /** For a failure: the `profile` command's one line, when it is not `summary: fix`. */
  message?: string;
}

const hiddenNote = ` (hidden by ${HIDE_ENV})`;

export function capNames(capEff: bigint | null): string[] {
  return (['SYS_ADMIN', 'BPF', 'PERFMON', 'SYS_PTRACE', 'DAC_OVERRIDE'] as const).filter((n) => hasCap(capEff, Cap[n])).map((n) => `CAP_${n}`);
}

/** Enough privilege to load the BPF programs and open perf events: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON. */
export function canLoadBpf(r: Pick<HostReadings, 'capEff'>): boolean {
  return hasCap(r.capEff, Cap.SYS_ADMIN) || (hasCap(r.capEff, Cap.BPF) && hasCap(r.capEff, Cap.PERFMON));
}

/**
 * Privileges. CAP_BPF with CAP_PERFMON loads the programs and opens the
 * perf events, but uprobes take CAP_SYS_ADMIN again since "perf: Revert to
 * requiring CAP_SYS_ADMIN for uprobes" (Linux 6.16, and stable kernels from
 * mid-2025, e.g. 6.1.146; measured on 6.18): a warning here, and `doctor`'s
 * uprobes line tries one. Without root, the lock files in /run and the
 * workers' memory need CAP_DAC_OVERRIDE and CAP_SYS_PTRACE.
 */
export function checkRoot(r: HostReadings): Check {
  const caps = capNames(r.capEff);
  const who = r.hidden.has('root') ? 'a user without root' : r.uid === 0 ? 'root (uid 0)' : `uid ${r.uid}`;
  const details = { uid: r.uid, capEff: r.capEff === null ? null : `0x${r.capEff.toString(16)}`, caps };
  const hiddenRoot = r.hidden.has('root') ? hiddenNote : '';
  if (canLoadBpf(r)) {
    const wanted = [
      ...(hasCap(r.capEff, Cap.SYS_ADMIN) ? [] : (['SYS_ADMIN'] as const)),
      ...(r.uid === 0 ? [] : (['SYS_PTRACE', 'DAC_OVERRIDE'] as const).filter((n) => !hasCap(r.capEff, Cap[n]))),
    ].map((n) => `CAP_${n}`);
    if (wanted.length === 0) return { id: 'root', level: 'pass', summary: `running as ${who} with ${caps.join(', ')}`, details };
    const why = [
      ...(wanted.includes('CAP_SYS_ADMIN') ? ['uprobes need CAP_SYS_ADMIN on Linux 6.16+ and recent stable kernels'] : []),
      ...(wanted.some((c) => c !== 'CAP_SYS_ADMIN') ? ["reading the workers' memory and the lock files in /run/apisix-profile may be refused"] : []),
    ];
    return {
      id: 'root',
      level: 'warn',
      summary: `running as ${who} with ${caps.join(', ')}, without ${wanted.join(', ')}: ${why.join('; ')}`,
      fix: r.uid === 0 ? 'give it CAP_SYS_ADMIN (docker run --privileged, or --cap-add SYS_ADMIN)' : `run it with sudo, or add ${wanted.join(', ')}`,
      details,
    };
  }
  return {
    id: 'root',
    level: 'fail',
    summary:
      r.uid === 0
        ? `root (uid 0) but without CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON (a container without privileges?)${hiddenRoot}`
        : `running as ${who} without CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON${hiddenRoot}`,
    fix: r.uid === 0 ? 'give it CAP_SYS_ADMIN (docker run --privileged, or --cap-add SYS_ADMIN)' : 'run it with sudo',
    details,
    exitCode: ExitCode.Permission,
    message:
      r.uid === 0
        ? 'apisix-profile needs CAP_SYS_ADMIN (BPF, perf events, uprobes): give it that (docker run --privileged)'
        : 'apisix-profile needs root (BPF, perf events, uprobes): run it with sudo',
  };
}

export function checkKernel(r: HostReadings): Check {
  const min = formatVersion(MIN_KERNEL);
  if (r.release === null) {
    return {
      id: 'kernel',
      level: 'fail',
      summary: `kernel release unknown${hiddenNote}: Linux ${min} or newer is needed`,
      fix: `run on Linux ${min} or newer`,
      exitCode: ExitCode.KernelUnsupported,
      message: `kernel release unknown${hiddenNote}: apisix-profile needs Linux ${min} or newer`,
    };
  }
  const v = parseRelease(r.release);
  const details = { release: r.release, minimum: min };
  if (!v) {
    return {
      id: 'kernel',
      level: 'warn',
      summary: `kernel ${r.release}: cannot tell its version (Linux ${min} or newer is needed)`,
      fix: `make sure it is Linux ${min} or newer`,
      details,
    };
  }
  if (!atLeast(v)) {
    const lacks = missingOn(v);
    return {
      id: 'kernel',
      level: 'fail',
      summary: `kernel ${r.release} is older than ${min}, the oldest the BPF programs load on (it lacks ${lacks.join(', ')})`,
      fix: `upgrade to Linux ${min} or newer`,
      details: { ...details, lacks },
      exitCode: ExitCode.KernelUnsupported,
      message: `kernel ${r.release} is too old: apisix-profile needs Linux ${min} or newer (it lacks ${lacks.join(', ')})`,
    };
  }
  return { id: 'kernel', level: 'pass', summary: `kernel ${r.release} (Linux ${min} or newer is needed)`, details };
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function checkBtf(r: HostReadings): Check {
  const { path, isDefault, present, bytes } = r.btf;
  if (present) {
    return { id: 'btf', level: 'pass', summary: `kernel BTF at ${path}${bytes !== null ? ` (${mb(bytes)})` : ''}`, details: { path, bytes } };
  }
  const hidden = r.hidden.has('btf') ? hiddenNote : '';
  if (isDefault) {
    return {
      id: 'btf',
      level: 'fail',
      summary: `this kernel has no BTF (${path})${hidden}`,
      fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF is needed',
      details: { path },
      exitCode: ExitCode.KernelUnsupported,
    };
  }
  return {
    id: 'btf',
    level: 'fail',
    summary: `no kernel BTF at ${path}${hidden}`,
    fix: "give --btf a vmlinux BTF file, or leave it out to use the running kernel's",
    details: { path },
    exitCode: ExitCode.KernelUnsupported,
  };
}

export function checkBpfSyscall(r: HostReadings): Check {
  if (r.bpfSyscall) return { id: 'bpf-syscall', level: 'pass', summary: 'the kernel has the bpf() syscall' };
  return {
    id: 'bpf-syscall',
    level: 'fail',
    summary: `this kernel has no bpf() syscall (${BPF_SYSCTL} is missing)${r.hidden.has('bpf') ? hiddenNote : ''}`,
    fix: 'a kernel built with CONFIG_BPF_SYSCALL is needed',
    exitCode: ExitCode.KernelUnsupported,
  };
}

/** Only ever a warning: root and CAP_PERFMON are not limited by it. */
export function checkPerfParanoid(r: HostReadings): Check {
  const value = r.perfEventParanoid;
  if (value === null) {
    return {
      id: 'perf-paranoid',
      level: 'warn',
      summary: `${PERF_EVENT_PARANOID} is missing (no perf events?)`,
      fix: 'a kernel built with CONFIG_PERF_EVENTS is needed',
      details: { value },
    };
  }
  const exempt = hasCap(r.capEff, Cap.PERFMON) || hasCap(r.capEff, Cap.SYS_ADMIN);
  if (exempt || value <= 1) {
    return {
      id: 'perf-paranoid',
      level: 'pass',
      summary: `perf_event_paranoid is ${value}${exempt ? ' (does not limit root or CAP_PERFMON)' : ''}`,
      details: { value },
    };
  }
  return {
    id: 'perf-paranoid',
    level: 'warn',
    summary: `perf_event_paranoid is ${value}: without root or CAP_PERFMON, perf events need 1 or less`,
    fix: 'run it with sudo, or sysctl kernel.perf_event_paranoid=1',
    details: { value },
  };
}

/** What opening a cpu-clock event through the addon gave, when it was tried. */
export type PerfOpen = { cpus: number } | { error: string; code?: string } | null;

export function checkPerfEvents(r: HostReadings, opened: PerfOpen): Check {
  const hw = r.hardwarePmu ? 'hardware events too' : 'no hardware events (a VM?), which sampling does not need';
  const details = { softwarePmu: r.softwarePmu, hardwarePmu: r.hardwarePmu, opened };
  if (!r.softwarePmu) {
    return {
      id: 'perf-events',
      level: 'fail',
      summary: `no perf events: ${SOFTWARE_PMU} is missing${r.hidden.has('perf-events') ? hiddenNote : ''}`,
      fix: 'a kernel built with CONFIG_PERF_EVENTS is needed',
      details,
      exitCode: ExitCode.KernelUnsupported,
    };
  }
  if (opened && 'cpus' in opened) {
    return { id: 'perf-events', level: 'pass', summary: `perf events: cpu-clock sampling opened on ${opened.cpus} CPU${opened.cpus === 1 ? '' : 's'}; ${hw}`, details };
  }
  if (opened && 'error' in opened) {
    const perm = opened.code === 'EACCES' || opened.code === 'EPERM';
    return {
      id: 'perf-events',
      level: 'fail',
      summary: `perf events: opening cpu-clock sampling failed: ${opened.error}`,
      fix: perm ? 'run it with sudo (or CAP_PERFMON), or lower kernel.perf_event_paranoid' : 'check that perf events work here (perf record -e cpu-clock)',
      details,
      exitCode: perm ? ExitCode.Permission : ExitCode.KernelUnsupported,
    };
  }
  return { id: 'perf-events', level: 'pass', summary: `perf events: the software PMU is there (${SOFTWARE_PMU}, not opened); ${hw}`, details };
}

/** What creating a uprobe through the addon gave, when it was tried. */
export type UprobeTry = { attached: string } | { error: string; code?: string } | null;

export function checkUprobes(r: HostReadings, tried: UprobeTry = null): Check {
  if (r.uprobePmuType === null) {
    return {
      id: 'uprobes',
      level: 'fail',
      summary: `no uprobes: ${UPROBE_PMU_TYPE} is missing${r.hidden.has('uprobes') ? hiddenNote : ''}`,
      fix: 'a kernel built with CONFIG_UPROBE_EVENTS is needed',
      exitCode: ExitCode.KernelUnsupported,
    };
  }
  const details = { type: r.uprobePmuType, tried };
  if (tried && 'attached' in tried) {
    return { id: 'uprobes', level: 'pass', summary: `uprobes: created one on ${tried.attached} (uprobe PMU type ${r.uprobePmuType})`, details };
  }
  if (tried && 'error' in tried) {
    const perm = tried.code === 'EACCES' || tried.code === 'EPERM';
    return {
      id: 'uprobes',
      level: 'fail',
      summary: `uprobes: creating one failed: ${tried.error}`,
      fix: perm ? 'run it with sudo, or add CAP_SYS_ADMIN (uprobes need it on Linux 6.16+ and recent stable kernels)' : 'check that uprobes work here',
      details,
      exitCode: perm ? ExitCode.Permission : ExitCode.KernelUnsupported,
    };
  }
  return { id: 'uprobes', level: 'pass', summary: `uprobes: the uprobe PMU is there (type ${r.uprobePmuType}; none created)`, details };
}

/** Only ever a warning: the profiler itself does not use tracefs. */
export function checkTracefs(r: HostReadings): Check {
  if (r.tracefs) return { id: 'tracefs', level: 'pass', summary: `tracefs mounted at ${r.tracefs}`, details: { mount: r.tracefs } };
  return {
    id: 'tracefs',
    level: 'warn',
    summary: `tracefs is not mounted${r.hidden.has('tracefs') ? hiddenNote : ''} (the profiler does not need it; perf, bpftrace and tracepoints do)`,
    fix: 'mount -t tracefs nodev /sys/kernel/tracing',
    details: { mount: null },
  };
}

/** The host checks in `doctor`'s order (perf events as the readings show them). */
export function hostChecks(r: HostReadings, opened: PerfOpen = null): Check[] {
  return [checkRoot(r), checkKernel(r), checkBtf(r), checkPerfParanoid(r), checkPerfEvents(r, opened), checkUprobes(r), checkTracefs(r)];
}

/** The one line a failed check gives the `profile` command. */
export function checkError(c: Check): CliError {
  const message = c.message ?? (c.fix ? `${c.summary}: ${c.fix}` : c.summary);
  return new CliError(message, c.exitCode ?? ExitCode.Internal);
}

/**
 * What a profile cannot start without, in this order: privileges, the
 * kernel release, BTF, the bpf() syscall, perf events, uprobes. Returns
 * the first failure, or null.
 */
export function essentialFailure(r: HostReadings): Check | null {
  for (const c of [checkRoot(r), checkKernel(r), checkBtf(r), checkBpfSyscall(r), checkPerfEvents(r, null), checkUprobes(r)]) {
    if (c.level === 'fail') return c;
  }
  return null;
}

/** Throws the first essential failure as the `profile` command's one-line error. */
export function assertProfilingPossible(opts: { btfPath?: string; env?: NodeJS.ProcessEnv } = {}): HostReadings {
  const r = readHost(opts);
  const failed = essentialFailure(r);
  if (failed) throw checkError(failed);
  return r;
}
