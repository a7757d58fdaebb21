// `apisix-profile doctor [--pid PID | --container NAME] [--json]`: can a
// profile work here? One line per check (✓, ! for a warning, ✗ with the fix),
// the verifier's cost of every BPF program under every option set against
// the budget, and with a target: the nginx processes, their LuaJIT, and a
// two-second trial profile that finds each one's global_State and loads its
// unwind rows. Exit 0 when a profile would work (warnings allowed), else the
// exit code of the first failed check.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { CliError, ExitCode } from '../errors.js';
import { type BudgetReport, deepestStackPerProgram, LOAD_VARIANTS, measureVerifierCosts, worstPerProgram } from '../kernel/budget.js';
import {
  canLoadBpf,
  type Check,
  checkBpfSyscall,
  checkBtf,
  checkKernel,
  checkPerfEvents,
  checkPerfParanoid,
  checkRoot,
  checkTracefs,
  checkUprobes,
  DEFAULT_BTF,
  HIDE_ENV,
  type HostReadings,
  type PerfOpen,
  readHost,
  type UprobeTry,
} from '../kernel/features.js';
import { formatVersion, MIN_KERNEL } from '../kernel/min-kernel.js';
import { STACK_LIMIT, VERIFIER_BUDGET } from '../kernel/verifier.js';
import { checkSchedSwitch, type SwitchTry } from '../kernel/sched-switch.js';
import { findLuajit } from '../luajit/detect.js';
import { planTables } from '../luajit/layout-choice.js';
import { type LuajitTable, loadOffsetTables, tableName } from '../luajit/offset-tables.js';
import type { NativeError } from '../native/addon.js';
import { ProfilerObject } from '../native/profiler-object.js';
import type { TargetOutcome } from '../profile/global-state.js';
import { bpfObjectPath, runProfile, type RunResult } from '../profile/run.js';
import { loadElfObject } from '../elf/elf-cache.js';
import { findSymbol } from '../elf/elf-symbols.js';
import { ContainerError, DockerClient, dockerSocketPath } from '../target/docker.js';
import { isExecutable, type Mapping, readProcMaps } from '../target/proc-maps.js';
import { expandTarget, isNginxMaster, isNginxWorker, listProcesses, type ProcessInfo, readProcess } from '../target/processes.js';
import { lockTargets } from '../target/profile-lock.js';
import { describePid, resolveContainerTargets } from '../target/resolve-container-targets.js';
import { openTerminal, type RunContext } from './context.js';
import { containerRef, integerIn, logFormat, logLevel, type LogOptions } from './options.js';

export interface DoctorOptions extends LogOptions {
  pid?: number;
  container?: string;
  json?: boolean;
  btf: string;
}

/** The kernel's limit on instructions verified per program (since 5.2). */
export const VERIFIER_LIMIT = 1_000_000;
/** How long the trial profile of a target samples. */
export const TRIAL_SECONDS = 2;

export function doctorCommand(): Command {
  return new Command('doctor')
    .summary('check that this host (and a target) can be profiled')
    .description(
      'Check privileges, the kernel (release, BTF, perf events, uprobes, tracefs) and that every BPF program loads, ' +
        'with its verifier cost against the budget. With --pid or --container, also find the nginx processes and ' +
        `their LuaJIT, and profile them for ${TRIAL_SECONDS} s to find each one's Lua state and load its unwind rows. ` +
        'One line per check; a failed one says what to do.',
    )
    .option('-p, --pid <pid>', 'an nginx master or worker pid to check (with --container: the pid inside the container)', integerIn('pid', 1, 2 ** 22))
    .option('--container <name|id>', "a Docker container's name or id (prefix): check its nginx workers", containerRef)
    .option('--json', 'print one JSON object to stdout: {ok, checks, budget} (for scripts)')
    .addOption(new Option('--btf <path>', 'kernel BTF the BPF programs are relocated against (CO-RE)').default(DEFAULT_BTF))
    .addOption(new Option('--log-level <level>', 'log level of the trial profile (on stderr)').argParser(logLevel).default('error'))
    .addOption(new Option('--log-format <format>', 'pretty or json (default: pretty on a terminal, json otherwise)').argParser(logFormat))
    .addHelpText(
      'after',
      `
Examples:
  sudo apisix-profile doctor
  sudo apisix-profile doctor --pid $(cat /usr/local/apisix/logs/nginx.pid)
  sudo apisix-profile doctor --container apisix
  sudo apisix-profile doctor --json | jq .budget

Marks: ✓ fine, ! a warning (a profile still works), ✗ failed (with the fix), - not checked.

Exit codes: 0 a profile would work, 3 target not found, 4 permission denied,
5 kernel unsupported, 8 a BPF program rejected by the verifier; else as for profile.`,
    );
}

// ---------------------------------------------------------------- pure parts

const MARKS: Record<Check['level'], string> = { pass: '✓', warn: '!', fail: '✗', skip: '-' };

const fmt = (n: number): string => n.toLocaleString('en-US');

/** One line: mark, summary, and the fix for a warning or failure. */
export function formatCheck(c: Check): string {
  const fix = c.fix && (c.level === 'fail' || c.level === 'warn') ? ` — fix: ${c.fix}` : '';
  return `${MARKS[c.level]} ${c.summary}${fix}`;
}

/** 0 unless a check failed; then the first failure's code. */
export function chooseExitCode(checks: readonly Check[]): number {
  const failed = checks.find((c) => c.level === 'fail');
  return failed ? (failed.exitCode ?? ExitCode.Internal) : ExitCode.Ok;
}

/** The last line: would a profile work. */
export function verdict(checks: readonly Check[]): string {
  const warnings = checks.filter((c) => c.level === 'warn').length;
  const failed = checks.find((c) => c.level === 'fail');
  if (failed) return `a profile would not work here: ${failed.summary} (exit code ${chooseExitCode(checks)})`;
  return `a profile would work here${warnings > 0 ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : ''}`;
}

export interface DoctorReport {
  ok: boolean;
  exitCode: number;
  release: string | null;
  minKernel: string;
  checks: { id: string; ok: boolean; level: Check['level']; summary: string; fix?: string; details?: Record<string, unknown> }[];
  budget: BudgetReport | null;
}

export function doctorReport(checks: readonly Check[], budget: BudgetReport | null, release: string | null): DoctorReport {
  const exitCode = chooseExitCode(checks);
  return {
    ok: exitCode === ExitCode.Ok,
    exitCode,
    release,
    minKernel: formatVersion(MIN_KERNEL),
    checks: checks.map((c) => ({
      id: c.id,
      ok: c.level === 'pass' || c.level === 'warn',
      level: c.level,
      summary: c.summary,
      ...(c.fix !== undefined ? { fix: c.fix } : {}),
      ...(c.details !== undefined ? { details: c.details } : {}),
    })),
    budget,
  };
}

/**
 * The exit code of a load-error.ts line (the budget report keeps only the
 * line): permission, a kernel that lacks something, or a verifier rejection.
 */
export function loadErrorExitCode(line: string): number {
  if (/refused to load BPF programs \((EPERM|EACCES)\)/.test(line)) return ExitCode.Permission;
  if (/lacks the BPF helper|could not load the BPF object/.test(line)) return ExitCode.KernelUnsupported;
  return ExitCode.BpfRejected;
}

/**
 * Check 8: per program, its worst verified instruction count and deepest
 * call-chain stack over every option set; per distinct failure, one line.
 */
export function bpfChecks(report: BudgetReport): Check[] {
  const checks: Check[] = [];
  const total = LOAD_VARIANTS.length;
  const deepest = deepestStackPerProgram(report.costs);
  for (const [program, worst] of worstPerProgram(report.costs)) {
    const mine = report.costs.filter((c) => c.program === program);
    const sets = `over ${mine.length} option set${mine.length === 1 ? '' : 's'}`;
    const stack = deepest.get(program)!;
    // A report without stackBudget predates the stack figures: its line has none.
    const measuresStack = report.stackBudget !== undefined;
    const details = {
      program,
      worst: worst.instructions,
      worstVariant: worst.variant,
      budget: report.budget,
      limit: VERIFIER_LIMIT,
      variants: Object.fromEntries(mine.map((c) => [c.variant, c.instructions])),
      ...(measuresStack
        ? {
            stack: stack.stack,
            stackVariant: stack.variant,
            stackBudget: report.stackBudget,
            stackLimit: STACK_LIMIT,
            stackVariants: Object.fromEntries(mine.map((c) => [c.variant, c.stack])),
          }
        : {}),
    };
    const stackPart = !measuresStack
      ? ''
      : stack.stack == null
        ? ', stack depth not reported'
        : `, stack ${fmt(stack.stack)} bytes on its deepest call chain (budget ${fmt(report.stackBudget!)}, limit ${fmt(STACK_LIMIT)})`;
    const stackOver = measuresStack && stack.stack != null && stack.stack > report.stackBudget!;
    if (worst.instructions === null) {
      checks.push({
        id: `bpf:${program}`,
        level: 'warn',
        summary: `BPF ${program} loads, but the kernel gave no instruction count (${worst.variant})`,
        fix: 'nothing to do for profiling; the budget check needs Linux 5.16+ (verified_insns)',
        details,
      });
    } else if (worst.instructions > report.budget) {
      checks.push({
        id: `bpf:${program}`,
        level: 'warn',
        summary: `BPF ${program} verifies in ${fmt(worst.instructions)} instructions with ${worst.variant}, over its budget of ${fmt(report.budget)} (limit ${fmt(VERIFIER_LIMIT)}) ${sets}`,
        fix: 'it loads here, but a newer kernel may reject it: please report it with `apisix-profile doctor --json`',
        details,
      });
    } else if (stackOver) {
      checks.push({
        id: `bpf:${program}`,
        level: 'warn',
        summary: `BPF ${program} needs ${fmt(stack.stack!)} bytes of stack on its deepest call chain with ${stack.variant}, over its budget of ${fmt(report.stackBudget!)} (limit ${fmt(STACK_LIMIT)}) ${sets}`,
        fix: 'it loads here, but another kernel may reject it: please report it with `apisix-profile doctor --json`',
        details,
      });
    } else {
      checks.push({
        id: `bpf:${program}`,
        level: 'pass',
        summary: `BPF ${program} verifies in ${fmt(worst.instructions)} instructions (budget ${fmt(report.budget)}, limit ${fmt(VERIFIER_LIMIT)})${stackPart} ${sets}`,
        details,
      });
    }
  }
  const byError = new Map<string, string[]>();
  for (const f of report.failures) byError.set(f.error, [...(byError.get(f.error) ?? []), f.variant]);
  for (const [error, variants] of byError) {
    checks.push({
      id: 'bpf-load',
      level: 'fail',
      summary: `BPF object not loaded with ${variants.length} of ${total} option sets (${variants.join('; ')}): ${error}`,
      details: { variants, error },
      exitCode: loadErrorExitCode(error),
    });
  }
  if (report.costs.length === 0 && report.failures.length === 0) {
    checks.push({ id: 'bpf-load', level: 'fail', summary: 'BPF object holds no programs', exitCode: ExitCode.Internal });
  }
  return checks;
}

/** Check 10, first part: what the pid is. Pure over a process list. */
export function targetCheck(pid: number, target: ProcessInfo | null, all: readonly ProcessInfo[]): { check: Check; pids: number[] } {
  if (!target) {
    return {
      check: { id: 'target', level: 'fail', summary: `no process with pid ${pid}`, fix: 'check the pid (e.g. pgrep -a nginx)', exitCode: ExitCode.TargetNotFound },
      pids: [],
    };
  }
  if (isNginxMaster(target)) {
    const workers = expandTarget(target, [...all]).map((p) => p.pid);
    if (workers.length === 0) {
      return {
        check: { id: 'target', level: 'fail', summary: `nginx master ${pid} has no worker processes`, fix: 'start nginx fully, or give a worker pid', exitCode: ExitCode.TargetNotFound },
        pids: [],
      };
    }
    return {
      check: { id: 'target', level: 'pass', summary: `pid ${pid} is an nginx master with ${workers.length} worker(s): ${workers.join(', ')}`, details: { master: pid, workers } },
      pids: workers,
    };
  }
  if (isNginxWorker(target)) {
    return { check: { id: 'target', level: 'pass', summary: `pid ${pid} is an nginx worker (master ${target.ppid})`, details: { worker: pid, master: target.ppid } }, pids: [pid] };
  }
  return {
    check: {
      id: 'target',
      level: 'warn',
      summary: `pid ${pid} (${target.comm}) is not an nginx master or worker: it is profiled as one process`,
      fix: "give the nginx master's pid (logs/nginx.pid) for all its workers",
      details: { pid, comm: target.comm },
    },
    pids: [pid],
  };
}

/** What detection alone says about one process's LuaJIT. */
export interface LuajitFinding {
  pid: number;
  /** null: none mapped; undefined maps: /proc/<pid>/maps unreadable. */
  path: string | null;
  openresty: boolean;
  /** The version string it carries ("LuaJIT 2.1.1710398010"); null when none was found. */
  version?: string | null;
  candidates: string[];
  probes: string[];
  /** The profiler's one-line refusal: it names a release no offset table was made from. */
  refusal?: string;
  /** Why the choice rests on memory alone (no version string). */
  warning?: string;
  error?: string;
}

/** Readable name of an offset table: `OpenResty luajit2 2.1-20230119, GC64`. */
export function describeTable(t: Pick<LuajitTable, 'package' | 'version' | 'mode'>): string {
  const family = t.package === 'luajit2' ? "OpenResty's luajit2" : 'upstream LuaJIT';
  return `${family} ${t.version}, ${t.mode === 'gc64' ? 'GC64' : 'non-GC64'}`;
}

function pidList(pids: readonly number[], containerPids: ReadonlyMap<number, number>): string {
  const shown = pids.slice(0, 6).map((p) => describePid(p, containerPids));
  return `pid${pids.length === 1 ? '' : 's'} ${shown.join(', ')}${pids.length > 6 ? `, … (${pids.length})` : ''}`;
}

/** Check 10, LuaJIT as detection sees it: one line per distinct library (or failure). */
export function luajitChecks(findings: readonly LuajitFinding[], containerPids: ReadonlyMap<number, number> = new Map()): Check[] {
  const groups = new Map<string, LuajitFinding[]>();
  for (const f of findings) {
    const key = f.error !== undefined ? `error:${f.error}` : f.path === null ? 'none' : `path:${f.path}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const checks: Check[] = [];
  for (const [key, group] of groups) {
    const f = group[0];
    const who = pidList(group.map((g) => g.pid), containerPids);
    if (f.error !== undefined) {
      const perm = /EACCES|EPERM/.test(f.error);
      checks.push({
        id: 'luajit',
        level: 'fail',
        summary: `${who}: cannot read its mappings (${f.error})`,
        fix: perm ? 'run it with sudo' : 'check that the process still runs',
        exitCode: perm ? ExitCode.Permission : ExitCode.TargetNotFound,
      });
    } else if (key === 'none') {
      checks.push({
        id: 'luajit',
        level: 'warn',
        summary: `${who}: no LuaJIT mapped (no object exports lua_resume): only C frames would be profiled`,
        fix: 'give the pid of an nginx with ngx_lua (OpenResty, APISIX)',
        details: { pids: group.map((g) => g.pid) },
      });
    } else {
      const family = f.openresty ? "OpenResty's luajit2 (exports lua_setexdata)" : 'upstream LuaJIT';
      const says = f.version ? `says '${f.version}'` : 'carries no version string';
      const details = { pids: group.map((g) => g.pid), path: f.path, openresty: f.openresty, version: f.version ?? null, candidates: f.candidates, probes: f.probes };
      checks.push(
        f.refusal !== undefined
          ? // The same line a profile stops with.
            { id: 'luajit', level: 'fail', summary: `${who}: ${f.refusal}`, exitCode: ExitCode.LuajitUnsupported, details }
          : {
              id: 'luajit',
              level: f.warning ? 'warn' : 'pass',
              summary: `${who}: LuaJIT ${f.path}, ${family}, ${says}; offset tables ${f.version ? 'made from that release' : 'to try'}: ${f.candidates.join(', ')}; uprobes on ${f.probes.join(', ') || 'nothing'}`,
              ...(f.warning ? { fix: 'use a LuaJIT that keeps its version string (jit.version) so the table can be checked against its release' } : {}),
              details,
            },
      );
    }
  }
  return checks;
}

const VIA_TEXT: Record<string, string> = {
  uprobe: 'from the lua_State a uprobe on the Lua API saw',
  'DISPATCH register': "from the VM's DISPATCH register (r14) in a sample",
  stack: 'from a lua_State pointer on the sampled stack',
};

/** After the trial: which table and how global_State was found, per group of workers alike. */
export function layoutChecks(
  outcomes: readonly TargetOutcome[],
  tables: readonly LuajitTable[],
  containerPids: ReadonlyMap<number, number> = new Map(),
): Check[] {
  const groups = new Map<string, TargetOutcome[]>();
  for (const o of outcomes) {
    if (o.luajit === null) continue;
    const key = `${o.luajit}\n${o.table ?? (o.gKnown ? 'nomatch' : 'unseen')}\n${o.via ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const checks: Check[] = [];
  for (const group of groups.values()) {
    const o = group[0];
    const who = pidList(group.map((g) => g.pid), containerPids);
    const details = { pids: group.map((g) => g.pid), luajit: o.luajit, table: o.table, via: o.via, evidence: o.evidence, g: Object.fromEntries(group.map((g) => [g.pid, g.g])) };
    if (o.table) {
      const t = tables.find((x) => tableName(x) === o.table);
      checks.push({
        id: 'luajit-layout',
        level: 'pass',
        summary: `${who}: LuaJIT layout ${o.table}${t ? ` (${describeTable(t)})` : ''}; global_State found ${VIA_TEXT[o.via ?? ''] ?? `through ${o.via}`}${o.evidence ? `; ${o.evidence}` : ''}`,
        details,
      });
    } else if (o.gKnown) {
      checks.push({
        id: 'luajit-layout',
        level: 'warn',
        summary: `${who}: no known LuaJIT layout matches ${o.luajit}: only C frames would be profiled`,
        fix: 'please report it with `apisix-profile doctor --json` and the LuaJIT build in use',
        details,
      });
    } else {
      checks.push({
        id: 'luajit-layout',
        level: 'warn',
        summary: `${who}: LuaJIT was not seen running in the ${TRIAL_SECONDS} s trial, so its layout and global_State are not confirmed`,
        fix: 'send it requests while doctor runs (its Lua code must run)',
        details,
      });
    }
  }
  return checks;
}

/** After the trial: unwind rows per file, over every target (files are shared). */
export function unwindCheck(outcomes: readonly TargetOutcome[], mapsByPid: ReadonlyMap<number, readonly Mapping[]>): Check {
  const rowsByFile = new Map<string, number>();
  const withoutRows = new Set<string>();
  for (const o of outcomes) {
    const maps = mapsByPid.get(o.pid) ?? [];
    const starts = new Map(o.unwindMappings.map((m) => [m.start, m.rowCount]));
    for (const m of maps) {
      if (!isExecutable(m) || !m.path.startsWith('/')) continue;
      const rows = starts.get(m.start);
      if (rows === undefined) withoutRows.add(m.path);
      else rowsByFile.set(m.path, rows);
    }
  }
  for (const p of rowsByFile.keys()) withoutRows.delete(p);
  const total = [...rowsByFile.values()].reduce((a, b) => a + b, 0);
  const files = [...rowsByFile].sort((a, b) => b[1] - a[1]);
  const listed = files.slice(0, 5).map(([p, n]) => `${basename(p)} ${fmt(n)}`);
  const more = files.length > 5 ? `, ${files.length - 5} more` : '';
  const missing = [...withoutRows].map((p) => basename(p));
  const details = { rows: total, files: Object.fromEntries(files), withoutRows: [...withoutRows] };
  if (files.length === 0) {
    return {
      id: 'unwind',
      level: 'warn',
      summary: 'no .eh_frame unwind rows were loaded for the targets: native stacks would stop early',
      fix: 'try --unwind fp (frame pointers) when profiling',
      details,
    };
  }
  return {
    id: 'unwind',
    level: 'pass',
    summary: `.eh_frame unwind rows: ${fmt(total)} for ${files.length} file${files.length === 1 ? '' : 's'} (${listed.join(', ')}${more})${missing.length > 0 ? `; none for ${missing.join(', ')}` : ''}`,
    details,
  };
}

/** After the trial: the samples it saw. */
export function samplesCheck(result: Pick<RunResult, 'stats'>, containerPids: ReadonlyMap<number, number> = new Map()): Check {
  const s = result.stats;
  const perPid = [...s.perPid].map(([pid, n]) => `${describePid(pid, containerPids)}: ${n}`).join(', ');
  const inLua = s.samples > 0 ? ((100 * s.samplesInLua) / s.samples).toFixed(1) : '0.0';
  const u = s.unwind;
  const complete = u.samples > 0 ? `; ${((100 * u.complete) / u.samples).toFixed(1)}% of native walks complete` : '';
  const details = { samples: s.samples, samplesInLua: s.samplesInLua, perPid: Object.fromEntries(s.perPid), elapsedSec: s.elapsedSec, unwind: u, lost: s.lostMapFull };
  if (s.samples === 0) {
    return {
      id: 'samples',
      level: 'warn',
      summary: `trial profile: no samples in ${s.elapsedSec.toFixed(1)} s (the workers did not run on a CPU)`,
      fix: 'put load on the gateway while doctor runs',
      details,
    };
  }
  return {
    id: 'samples',
    level: 'pass',
    summary: `trial profile: ${s.samples} samples in ${s.elapsedSec.toFixed(1)} s (${perPid || 'none'}), ${inLua}% in Lua${complete}`,
    details,
  };
}

function skipped(id: string, summary: string): Check {
  return { id, level: 'skip', summary };
}

// ---------------------------------------------------------------- IO parts

function errorCheck(id: string, err: unknown, what: string): Check {
  if (err instanceof CliError) return { id, level: 'fail', summary: err.message, exitCode: err.exitCode };
  const e = err as NativeError;
  const perm = e?.code === 'EPERM' || e?.code === 'EACCES';
  return {
    id,
    level: 'fail',
    summary: `${what}: ${e?.message ?? String(err)}`,
    ...(perm ? { fix: 'run it with sudo' } : {}),
    exitCode: perm ? ExitCode.Permission : ExitCode.Internal,
  };
}

/** What one BPF session could do here: open cpu-clock sampling, create a uprobe. */
interface Probing {
  perf: PerfOpen;
  uprobe: UprobeTry;
  /** The off-CPU modes' tracepoint. */
  offCpu: SwitchTry;
}

/**
 * A uprobe on libc's getpid in this very process, detached at once (the
 * program ignores processes that are not in procs). null: not tried.
 */
function tryUprobe(bpf: ProfilerObject): UprobeTry {
  let libc: Mapping | undefined;
  try {
    libc = readProcMaps(process.pid).find((m) => isExecutable(m) && /\/libc\.so\.6$/.test(m.path));
  } catch {
    return null;
  }
  const obj = libc ? loadElfObject(libc.path) : null;
  const sym = obj ? findSymbol(obj.symbols, 'getpid') : undefined;
  if (!libc || sym?.fileOffset === undefined) return null;
  const where = `${basename(libc.path)}:getpid in this process`;
  try {
    bpf.detach(bpf.attachLuaStateProbe(process.pid, libc.path, Number(sym.fileOffset)));
    return { attached: where };
  } catch (err) {
    const e = err as NativeError;
    return { error: `${where}: ${e.message}`, ...(e.code ? { code: e.code } : {}) };
  }
}

/** Attaches the off-CPU switch program (nothing is in procs: it returns at once) and detaches it. */
function trySchedSwitch(bpf: ProfilerObject): SwitchTry {
  try {
    bpf.detach(bpf.startOffCpu());
    return { attached: true };
  } catch (err) {
    const e = err as NativeError;
    return { error: e.message, ...(e.code ? { code: e.code } : {}) };
  }
}

/**
 * Loads the programs once more (default options, every program) to open cpu-clock sampling
 * on every CPU at 1 Hz (nothing is in procs, so the program returns at
 * once), create one uprobe and attach the switch tracepoint; closes everything.
 */
function probeSession(objectPath: string, btfPath: string | undefined): Probing {
  const bpf = ProfilerObject.open(objectPath, btfPath ? { btfPath } : {});
  try {
    bpf.configure({ kernelStacks: true, leafPc: false, unwindCfi: true, mode: 'wall' });
    try {
      bpf.load();
    } catch {
      return { perf: null, uprobe: null, offCpu: null }; // the BPF lines say why
    }
    let perf: PerfOpen;
    try {
      perf = { cpus: bpf.startSampling(1).length };
    } catch (err) {
      const e = err as NativeError;
      perf = { error: e.message, ...(e.code ? { code: e.code } : {}) };
    }
    return { perf, uprobe: tryUprobe(bpf), offCpu: trySchedSwitch(bpf) };
  } finally {
    bpf.close();
  }
}

function luajitFinding(pid: number, maps: readonly Mapping[] | { error: string }, tables: readonly LuajitTable[]): LuajitFinding {
  if ('error' in maps) return { pid, path: null, openresty: false, candidates: [], probes: [], error: maps.error };
  const lj = findLuajit(pid, maps);
  if (!lj) return { pid, path: null, openresty: false, candidates: [], probes: [] };
  const plan = planTables(lj, tables);
  return {
    pid,
    path: lj.path,
    openresty: lj.openresty,
    version: lj.version,
    candidates: 'refusal' in plan ? [] : plan.candidates.map(tableName),
    probes: lj.probeOffsets.map((p) => p.name),
    ...('refusal' in plan ? { refusal: plan.refusal } : plan.warning ? { warning: plan.warning } : {}),
  };
}

interface Targets {
  pids: number[];
  containerPids: Map<number, number>;
}

async function containerChecks(opts: DoctorOptions, hidden: ReadonlySet<string>, emit: (c: Check) => void): Promise<Targets | null> {
  const socket = dockerSocketPath();
  try {
    if (hidden.has('docker')) throw new ContainerError('socket-missing', `Docker socket ${socket} not found (hidden by ${HIDE_ENV}): is dockerd running? set DOCKER_HOST=unix://... to use another`);
    const version = (await new DockerClient().getJson('/version')) as { Version?: string; ApiVersion?: string } | null;
    emit({
      id: 'docker',
      level: 'pass',
      summary: `Docker API on ${socket} answers (Docker ${version?.Version ?? '?'}, API ${version?.ApiVersion ?? '?'})`,
      details: { socket, version: version?.Version ?? null, apiVersion: version?.ApiVersion ?? null },
    });
  } catch (err) {
    emit(errorCheck('docker', err, 'Docker API'));
    emit(skipped('container', `container ${opts.container}: not looked for (no Docker API)`));
    return null;
  }
  try {
    const silent = pino({ level: 'silent' });
    const t = await resolveContainerTargets(opts.container!, opts.pid, silent);
    const workers = t.pids.map((p) => describePid(p, t.containerPids)).join(', ');
    emit({
      id: 'container',
      level: 'pass',
      summary:
        t.masterPids.length > 0
          ? `container ${t.container.name} (${t.container.id}): nginx master ${t.masterPids.join(', ')} with ${t.pids.length} worker(s): ${workers}`
          : `container ${t.container.name} (${t.container.id}): pid ${workers}`,
      details: { name: t.container.name, id: t.container.id, masters: t.masterPids, workers: t.pids.map((p) => ({ pid: p, containerPid: t.containerPids.get(p) ?? null })) },
    });
    return { pids: t.pids, containerPids: t.containerPids };
  } catch (err) {
    emit(errorCheck('container', err, `container ${opts.container}`));
    return null;
  }
}

async function trialRun(
  targets: Targets,
  opts: DoctorOptions,
  log: Logger,
  ctx: RunContext,
  tables: readonly LuajitTable[],
  mapsByPid: ReadonlyMap<number, readonly Mapping[]>,
  emit: (c: Check) => void,
): Promise<void> {
  const lock = lockTargets(targets.pids);
  if ('busy' in lock) {
    emit({
      id: 'trial',
      level: 'warn',
      summary: `pid ${lock.busy} is being profiled by apisix-profile (pid ${lock.owner}): no trial profile`,
      fix: 'run doctor again when that profile ends',
    });
    return;
  }
  // Released however the process ends (also by a second Ctrl-C's exit).
  process.once('exit', () => lock.release());
  let result: RunResult;
  try {
    result = await runProfile({
      pids: targets.pids,
      durationSec: TRIAL_SECONDS,
      frequency: 99,
      kernelStacks: true,
      lines: 'definition',
      unwind: 'cfi',
      btfPath: opts.btf === DEFAULT_BTF ? undefined : opts.btf,
      log,
      signal: ctx.interrupts(),
    });
  } catch (err) {
    emit(errorCheck('trial', err, 'trial profile'));
    return;
  } finally {
    lock.release();
  }
  for (const c of layoutChecks(result.targets, tables, targets.containerPids)) emit(c);
  emit(unwindCheck(result.targets, mapsByPid));
  emit(samplesCheck(result, targets.containerPids));
}

export async function runDoctorCommand(
  opts: DoctorOptions,
  ctx: RunContext,
  out: (text: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  const { log } = openTerminal(opts, ctx);
  const host: HostReadings = readHost({ btfPath: opts.btf, env: ctx.env });
  const checks: Check[] = [];
  const emit = (c: Check): void => {
    checks.push(c);
    if (!opts.json) out(`${formatCheck(c)}\n`);
  };
  const failedSoFar = () => checks.some((c) => c.level === 'fail');

  // 1-4: privileges, kernel release, BTF, perf_event_paranoid.
  const root = checkRoot(host);
  const kernel = checkKernel(host);
  const btf = checkBtf(host);
  for (const c of [root, kernel, btf, checkPerfParanoid(host)]) emit(c);

  // 8 first (5 opens perf events through a loaded program), shown in order.
  const objectPath = bpfObjectPath();
  const syscall = checkBpfSyscall(host);
  // CAP_BPF with CAP_PERFMON loads the programs even where uprobes need more;
  // an old kernel still gets the verifier's own answer (kernel-matrix guests).
  const blockers = [...(canLoadBpf(host) ? [] : [root]), btf].filter((c) => c.level === 'fail');
  let budget: BudgetReport | null = null;
  let bpf: Check[];
  let probing: Probing = { perf: null, uprobe: null, offCpu: null };
  const btfPath = opts.btf === DEFAULT_BTF ? undefined : opts.btf;
  if (syscall.level === 'fail') {
    bpf = [syscall];
  } else if (blockers.length > 0) {
    bpf = [skipped('bpf-load', `BPF programs: not loaded (needs ${blockers.map((c) => c.id).join(', ')} above)`)];
  } else if (!existsSync(objectPath)) {
    bpf = [{ id: 'bpf-load', level: 'fail', summary: `BPF object missing (${objectPath})`, fix: 'run `npm run build`', exitCode: ExitCode.Internal }];
  } else {
    try {
      budget = measureVerifierCosts(objectPath, btfPath);
      bpf = bpfChecks(budget);
      if (budget.failures.length < LOAD_VARIANTS.length) probing = probeSession(objectPath, btfPath);
    } catch (err) {
      bpf = [errorCheck('bpf-load', err, 'loading the BPF object')];
    }
  }
  // 5-7: perf events, uprobes, tracefs.
  for (const c of [checkPerfEvents(host, host.softwarePmu ? probing.perf : null), checkUprobes(host, host.uprobePmuType !== null ? probing.uprobe : null), checkSchedSwitch(probing.offCpu), checkTracefs(host)]) emit(c);
  for (const c of bpf) emit(c);

  // 9-10: the target.
  if (opts.container !== undefined || opts.pid !== undefined) {
    let targets: Targets | null = null;
    if (opts.container !== undefined) {
      targets = await containerChecks(opts, host.hidden, emit);
    } else {
      const pid = opts.pid!;
      const t = targetCheck(pid, readProcess(pid), listProcesses());
      emit(t.check);
      if (t.pids.length > 0) targets = { pids: t.pids, containerPids: new Map() };
    }
    if (targets) {
      const tables = loadOffsetTables();
      const mapsByPid = new Map<number, Mapping[]>();
      const findings = targets.pids.map((pid) => {
        let maps: Mapping[] | { error: string };
        try {
          maps = readProcMaps(pid);
          mapsByPid.set(pid, maps);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          maps = { error: e.code ?? e.message };
        }
        return luajitFinding(pid, maps, tables);
      });
      for (const c of luajitChecks(findings, targets.containerPids)) emit(c);
      if (failedSoFar()) {
        emit(skipped('trial', 'trial profile: not run (fix the failures above first)'));
      } else {
        await trialRun(targets, opts, log, ctx, tables, mapsByPid, emit);
      }
    }
  }

  const code = chooseExitCode(checks);
  if (opts.json) out(`${JSON.stringify(doctorReport(checks, budget, host.release))}\n`);
  else out(`${verdict(checks)}\n`);
  return code;
}
