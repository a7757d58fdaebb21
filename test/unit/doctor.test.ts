// `doctor`'s pure parts: its lines, the exit code it picks, the JSON for
// scripts, the BPF budget lines from a measured report, and the target lines
// from what detection and a trial run found. No root, no kernel.
import { describe, expect, it } from 'vitest';
import { buildProgram, type Dispatch } from '../../src/cli.js';
import {
  bpfChecks,
  chooseExitCode,
  describeTable,
  doctorReport,
  formatCheck,
  layoutChecks,
  loadErrorExitCode,
  luajitChecks,
  samplesCheck,
  targetCheck,
  unwindCheck,
  verdict,
} from '../../src/commands/doctor.js';
import { ExitCode } from '../../src/errors.js';
import { type BudgetReport, LOAD_VARIANTS, variantName } from '../../src/kernel/budget.js';
import type { Check } from '../../src/kernel/features.js';
import type { LuajitTable } from '../../src/luajit/offset-tables.js';
import type { TargetOutcome } from '../../src/profile/global-state.js';
import { emptyStats } from '../../src/profile/stats.js';
import type { Mapping } from '../../src/target/proc-maps.js';
import type { ProcessInfo } from '../../src/target/processes.js';

const VARIANTS = LOAD_VARIANTS.map(variantName);

/** A budget report as measured on 6.18: both programs in all 16 option sets. */
function report(sample: (variant: string, i: number) => number | null = (_v, i) => 20_000 + i * 300): BudgetReport {
  return {
    release: '6.18.44+deb13-amd64',
    budget: 100_000,
    costs: VARIANTS.flatMap((variant, i) => {
      const s = sample(variant, i);
      return [
        { variant, program: 'learn_global_state', instructions: 41, withinBudget: true },
        { variant, program: 'sample_stack', instructions: s, withinBudget: s !== null && s <= 100_000 },
      ];
    }),
    failures: [],
  };
}

describe('lines', () => {
  const pass: Check = { id: 'btf', level: 'pass', summary: 'kernel BTF at /sys/kernel/btf/vmlinux (5.2 MB)' };
  const warn: Check = { id: 'tracefs', level: 'warn', summary: 'tracefs is not mounted', fix: 'mount -t tracefs nodev /sys/kernel/tracing' };
  const fail: Check = { id: 'btf', level: 'fail', summary: 'this kernel has no BTF', fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF is needed', exitCode: 5 };

  it('marks each line and puts the fix on it when something is wrong', () => {
    expect(formatCheck(pass)).toBe('✓ kernel BTF at /sys/kernel/btf/vmlinux (5.2 MB)');
    expect(formatCheck(warn)).toBe('! tracefs is not mounted — fix: mount -t tracefs nodev /sys/kernel/tracing');
    expect(formatCheck(fail)).toBe('✗ this kernel has no BTF — fix: a kernel built with CONFIG_DEBUG_INFO_BTF is needed');
    expect(formatCheck({ id: 'bpf-load', level: 'skip', summary: 'BPF programs: not loaded (needs btf above)' })).toBe('- BPF programs: not loaded (needs btf above)');
    for (const c of [pass, warn, fail]) expect(formatCheck(c)).not.toContain('\n');
  });

  it('exits 0 with warnings, else with the first failure\'s code', () => {
    expect(chooseExitCode([pass, warn])).toBe(ExitCode.Ok);
    expect(chooseExitCode([pass, { ...fail, exitCode: ExitCode.Permission }, fail])).toBe(ExitCode.Permission);
    expect(chooseExitCode([warn, fail])).toBe(ExitCode.KernelUnsupported);
    // A failure without a code is an internal error, never 0.
    expect(chooseExitCode([{ id: 'x', level: 'fail', summary: 'x' }])).toBe(ExitCode.Internal);
    expect(verdict([pass, warn])).toBe('a profile would work here (1 warning)');
    expect(verdict([pass])).toBe('a profile would work here');
    expect(verdict([warn, fail])).toBe('a profile would not work here: this kernel has no BTF (exit code 5)');
  });

  it('gives scripts one object: ok, the checks, the budget', () => {
    const budget = report();
    const json = doctorReport([pass, warn, fail], budget, '6.18.44');
    expect(json.ok).toBe(false);
    expect(json.exitCode).toBe(5);
    expect(json.minKernel).toBe('6.1');
    expect(json.checks).toEqual([
      { id: 'btf', ok: true, level: 'pass', summary: pass.summary },
      { id: 'tracefs', ok: true, level: 'warn', summary: warn.summary, fix: warn.fix },
      { id: 'btf', ok: false, level: 'fail', summary: fail.summary, fix: fail.fix },
    ]);
    expect(json.budget).toBe(budget);
    // It survives JSON (no bigints, no Maps).
    expect(JSON.parse(JSON.stringify(json)).budget.costs).toHaveLength(2 * LOAD_VARIANTS.length);
    expect(doctorReport([pass, warn], null, null).ok).toBe(true);
  });
});

describe('BPF programs against the budget', () => {
  it('shows each program\'s worst count over the 16 option sets', () => {
    const checks = bpfChecks(report());
    expect(checks.map(formatCheck)).toEqual([
      '✓ BPF learn_global_state verifies in 41 instructions (budget 100,000, limit 1,000,000) over 16 option sets',
      '✓ BPF sample_stack verifies in 24,500 instructions (budget 100,000, limit 1,000,000) over 16 option sets',
    ]);
    expect(checks[1].details).toMatchObject({ worst: 24_500, worstVariant: VARIANTS[15], budget: 100_000, limit: 1_000_000 });
    expect(Object.keys(checks[1].details!.variants as object)).toEqual(VARIANTS);
    expect(chooseExitCode(checks)).toBe(ExitCode.Ok);
  });

  it('warns (a profile still works) when a program is over the budget in some option set', () => {
    const checks = bpfChecks(report((v) => (v === VARIANTS[2] ? 301_596 : 22_000)));
    expect(checks[1].level).toBe('warn');
    expect(checks[1].summary).toBe(
      `BPF sample_stack verifies in 301,596 instructions with ${VARIANTS[2]}, over its budget of 100,000 (limit 1,000,000) over 16 option sets`,
    );
    expect(checks[1].fix).toContain('doctor --json');
    expect(chooseExitCode(checks)).toBe(ExitCode.Ok);
  });

  it('shows each program\'s deepest call-chain stack, and warns over the stack budget', () => {
    const withStack = (sampler: number): BudgetReport => {
      const r = report();
      r.stackBudget = 384;
      r.costs = r.costs.map((c) => ({ ...c, stack: c.program === 'sample_stack' ? (c.variant === VARIANTS[3] ? sampler : 320) : 32 }));
      return r;
    };
    const within = bpfChecks(withStack(384));
    expect(formatCheck(within[1])).toBe(
      '✓ BPF sample_stack verifies in 24,500 instructions (budget 100,000, limit 1,000,000), stack 384 bytes on its deepest call chain (budget 384, limit 512) over 16 option sets',
    );
    expect(within[1].details).toMatchObject({ stack: 384, stackVariant: VARIANTS[3], stackBudget: 384, stackLimit: 512 });
    const over = bpfChecks(withStack(512));
    expect(over[1].level).toBe('warn');
    expect(over[1].summary).toBe(
      `BPF sample_stack needs 512 bytes of stack on its deepest call chain with ${VARIANTS[3]}, over its budget of 384 (limit 512) over 16 option sets`,
    );
    expect(chooseExitCode(over)).toBe(ExitCode.Ok);
  });

  it('warns when the kernel gives no count (before 5.16, no log line)', () => {
    const checks = bpfChecks(report(() => null));
    expect(checks[1].level).toBe('warn');
    expect(checks[1].summary).toContain('gave no instruction count');
  });

  it('fails once per distinct load error, with the exit code the error stands for', () => {
    const tooBig =
      'kernel 6.18.44 rejected BPF program sample_stack: its verifier processed 1,000,001 instructions, over its limit of 1,000,000; please report it';
    const r = report();
    r.costs = r.costs.filter((c) => c.variant !== VARIANTS[0] && c.variant !== VARIANTS[1]);
    r.failures = [
      { variant: VARIANTS[0], error: tooBig },
      { variant: VARIANTS[1], error: tooBig },
    ];
    const checks = bpfChecks(r);
    expect(checks.map((c) => c.level)).toEqual(['pass', 'pass', 'fail']);
    expect(checks[1].summary).toContain('over 14 option sets');
    expect(checks[2].summary).toBe(`BPF object not loaded with 2 of 16 option sets (${VARIANTS[0]}; ${VARIANTS[1]}): ${tooBig}`);
    expect(chooseExitCode(checks)).toBe(ExitCode.BpfRejected);
  });

  it('maps load-error lines to exit codes', () => {
    expect(loadErrorExitCode('the kernel 6.1.0 refused to load BPF programs (EPERM): run as root')).toBe(ExitCode.Permission);
    expect(loadErrorExitCode('kernel 5.10.0 lacks the BPF helper bpf_task_pt_regs that program sample_stack calls')).toBe(ExitCode.KernelUnsupported);
    expect(loadErrorExitCode('kernel 6.1.0 could not load the BPF object: Invalid argument')).toBe(ExitCode.KernelUnsupported);
    expect(loadErrorExitCode('kernel 6.1.0 rejected BPF program sample_stack (EACCES): R1 invalid mem access')).toBe(ExitCode.BpfRejected);
  });
});

const proc = (pid: number, ppid: number, cmdline: string, comm = 'nginx'): ProcessInfo => ({ pid, ppid, comm, cmdline });
const MASTER = proc(100, 1, 'nginx: master process nginx -p /tmp/x');
const W1 = proc(101, 100, 'nginx: worker process');
const W2 = proc(102, 100, 'nginx: worker process');

describe('the target', () => {
  it('names a master and its workers, a worker, and other processes', () => {
    const all = [MASTER, W1, W2, proc(7, 1, '/usr/bin/luajit app.lua', 'luajit')];
    expect(targetCheck(100, MASTER, all)).toEqual({
      check: { id: 'target', level: 'pass', summary: 'pid 100 is an nginx master with 2 worker(s): 101, 102', details: { master: 100, workers: [101, 102] } },
      pids: [101, 102],
    });
    expect(targetCheck(102, W2, all).check.summary).toBe('pid 102 is an nginx worker (master 100)');
    const other = targetCheck(7, all[3], all);
    expect(other.check.level).toBe('warn');
    expect(other.pids).toEqual([7]);
  });

  it('fails for a missing pid and a master without workers (exit code 3)', () => {
    const missing = targetCheck(99, null, []);
    expect(missing.check).toMatchObject({ level: 'fail', summary: 'no process with pid 99', exitCode: ExitCode.TargetNotFound });
    expect(targetCheck(100, MASTER, [MASTER]).check).toMatchObject({ level: 'fail', exitCode: ExitCode.TargetNotFound });
  });

  it('groups workers that map the same LuaJIT into one line', () => {
    const lib = '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2.1.0';
    const found = { path: lib, openresty: true, version: 'LuaJIT 2.1.0-beta3', candidates: ['luajit2-2.1-20230119-gc64', 'luajit2-2.1-20230119-nogc64'], probes: ['lua_resume', 'lua_pcall'] };
    const checks = luajitChecks([
      { pid: 101, ...found },
      { pid: 102, ...found },
      { pid: 103, path: null, openresty: false, candidates: [], probes: [] },
      { pid: 104, path: null, openresty: false, candidates: [], probes: [], error: 'EACCES' },
    ]);
    expect(checks.map(formatCheck)).toEqual([
      `✓ pids 101, 102: LuaJIT ${lib}, OpenResty's luajit2 (exports lua_setexdata), says 'LuaJIT 2.1.0-beta3'; offset tables made from that release: luajit2-2.1-20230119-gc64, luajit2-2.1-20230119-nogc64; uprobes on lua_resume, lua_pcall`,
      '! pid 103: no LuaJIT mapped (no object exports lua_resume): only C frames would be profiled — fix: give the pid of an nginx with ngx_lua (OpenResty, APISIX)',
      '✗ pid 104: cannot read its mappings (EACCES) — fix: run it with sudo',
    ]);
    expect(checks[2].exitCode).toBe(ExitCode.Permission);
    // A release no table was made from: the line a profile stops with, exit 10.
    const refusal = "LuaJIT at /opt/lj/libluajit.so: says 'LuaJIT 2.1.1736781742', exports lua_setexdata, and no offset table was made from that release (...)";
    const [refused] = luajitChecks([{ pid: 105, path: '/opt/lj/libluajit.so', openresty: true, version: 'LuaJIT 2.1.1736781742', candidates: [], probes: ['lua_resume'], refusal }]);
    expect(formatCheck(refused)).toBe(`✗ pid 105: ${refusal}`);
    expect(refused.exitCode).toBe(ExitCode.LuajitUnsupported);
    // No version string: memory alone decides, and doctor says so.
    const [bare] = luajitChecks([{ pid: 106, path: '/opt/lj/libluajit.so', openresty: true, version: null, candidates: ['luajit2-2.1-20230119-gc64'], probes: ['lua_resume'], warning: 'chosen from its memory layout alone' }]);
    expect(bare.level).toBe('warn');
    expect(bare.summary).toBe("pid 106: LuaJIT /opt/lj/libluajit.so, OpenResty's luajit2 (exports lua_setexdata), carries no version string; offset tables to try: luajit2-2.1-20230119-gc64; uprobes on lua_resume");
    // Container workers show their pid inside the container too.
    expect(luajitChecks([{ pid: 101, ...found }], new Map([[101, 7]]))[0].summary).toMatch(/^pid 101 \(7 in container\): /);
  });
});

const TABLES = [
  { package: 'luajit2', version: '2.1-20230119', mode: 'gc64' },
  { package: 'luajit2', version: '2.1-20230119', mode: 'nogc64' },
  { package: 'luajit', version: '2.1.0~beta3+git20220320+dfsg', mode: 'nogc64' },
] as LuajitTable[];

function outcome(pid: number, over: Partial<TargetOutcome> = {}): TargetOutcome {
  return {
    pid,
    luajit: '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2.1.0',
    table: 'luajit2-2.1-20230119-gc64',
    via: 'uprobe',
    g: `0x7f00000${pid}`,
    gKnown: true,
    evidence: null,
    unwindMappings: [],
    ...over,
  };
}

describe('after the trial profile', () => {
  it('names the table (family, version, GC64) and how global_State was found', () => {
    expect(describeTable(TABLES[0])).toBe("OpenResty's luajit2 2.1-20230119, GC64");
    expect(describeTable(TABLES[2])).toBe('upstream LuaJIT 2.1.0~beta3+git20220320+dfsg, non-GC64');
    const checks = layoutChecks([outcome(101), outcome(102), outcome(103, { via: 'DISPATCH register' }), outcome(104, { luajit: null, table: null, via: null, g: null, gKnown: false })], TABLES);
    expect(checks.map(formatCheck)).toEqual([
      "✓ pids 101, 102: LuaJIT layout luajit2-2.1-20230119-gc64 (OpenResty's luajit2 2.1-20230119, GC64); global_State found from the lua_State a uprobe on the Lua API saw",
      "✓ pid 103: LuaJIT layout luajit2-2.1-20230119-gc64 (OpenResty's luajit2 2.1-20230119, GC64); global_State found from the VM's DISPATCH register (r14) in a sample",
    ]);
    expect(checks[0].details).toMatchObject({ pids: [101, 102], g: { 101: '0x7f00000101', 102: '0x7f00000102' } });
  });

  it('warns when LuaJIT did not run, or no table matched', () => {
    const [unseen, nomatch] = layoutChecks(
      [outcome(101, { table: null, via: null, g: null, gKnown: false }), outcome(102, { table: null, via: null, g: null, gKnown: true })],
      TABLES,
    );
    expect(unseen.level).toBe('warn');
    expect(unseen.summary).toContain('was not seen running in the 2 s trial');
    expect(unseen.fix).toContain('send it requests');
    expect(nomatch.level).toBe('warn');
    expect(nomatch.summary).toContain('no known LuaJIT layout matches');
  });

  it('adds up unwind rows per file, over workers that share them', () => {
    const map = (start: bigint, path: string, perms = 'r-xp'): Mapping => ({ start, end: start + 0x1000n, perms, offset: 0n, dev: 'fe:00', inode: 1, path, deleted: false });
    const maps1 = [map(0x1000n, '/usr/sbin/nginx'), map(0x5000n, '/usr/lib/libluajit.so'), map(0x9000n, '/usr/lib/libnothing.so'), map(0xa000n, '/usr/lib/data', 'r--p'), map(0xb000n, '[vdso]')];
    const maps2 = maps1.map((m) => ({ ...m, start: m.start + 0x100000n, end: m.end + 0x100000n }));
    const em = (start: bigint, rowCount: number) => ({ start, end: start + 0x1000n, bias: 0n, rowFirst: 0, rowCount });
    const c = unwindCheck(
      [outcome(1, { unwindMappings: [em(0x1000n, 20_657), em(0x5000n, 11_783)] }), outcome(2, { unwindMappings: [em(0x101000n, 20_657), em(0x105000n, 11_783)] })],
      new Map([
        [1, maps1],
        [2, maps2],
      ]),
    );
    expect(formatCheck(c)).toBe('✓ .eh_frame unwind rows: 32,440 for 2 files (nginx 20,657, libluajit.so 11,783); none for libnothing.so');
    expect(unwindCheck([outcome(1)], new Map([[1, maps1]])).level).toBe('warn');
  });

  it('reports the samples seen, and warns when there were none', () => {
    const stats = emptyStats();
    stats.samples = 102;
    stats.samplesInLua = 88;
    stats.perPid = new Map([
      [101, 50],
      [102, 52],
    ]);
    stats.elapsedSec = 2.003;
    stats.unwind = { samples: 100, complete: 97, noCfi: 3, badRead: 0, depth: 0, unsupported: 0 };
    expect(formatCheck(samplesCheck({ stats }))).toBe('✓ trial profile: 102 samples in 2.0 s (101: 50, 102: 52), 86.3% in Lua; 97.0% of native walks complete');
    const idle = emptyStats();
    idle.elapsedSec = 2;
    expect(samplesCheck({ stats: idle })).toMatchObject({ level: 'warn', summary: 'trial profile: no samples in 2.0 s (the workers did not run on a CPU)' });
  });
});

describe('the command line', () => {
  async function parse(...argv: string[]) {
    let seen: Record<string, unknown> | undefined;
    let out = '';
    let err = '';
    const none = async () => 0;
    const dispatch: Dispatch = {
      profile: none,
      report: none,
      diff: none,
      doctor: async (opts) => {
        seen = opts as unknown as Record<string, unknown>;
        return 5;
      },
    };
    const { program, exitCode } = buildProgram(dispatch, { writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
    let code: number | undefined;
    try {
      await program.parseAsync(argv, { from: 'user' });
      code = exitCode();
    } catch {
      code = undefined;
    }
    return { seen, out, err, code };
  }

  it('parses doctor with its defaults and returns its exit code', async () => {
    const p = await parse('doctor');
    expect(p.seen).toEqual({ btf: '/sys/kernel/btf/vmlinux', logLevel: 'error' });
    expect(p.code).toBe(5);
    expect((await parse('doctor', '--pid', '42', '--json')).seen).toMatchObject({ pid: 42, json: true });
    expect((await parse('doctor', '--container', 'apisix')).seen).toMatchObject({ container: 'apisix' });
  });

  it('rejects a bad pid in one line', async () => {
    const p = await parse('doctor', '--pid', 'x');
    expect(p.err).toBe("apisix-profile: option '-p, --pid <pid>' argument 'x' is invalid. pid must be a whole number from 1 to 4194304\n");
  });

  it('lists exit code 8 in the help', async () => {
    const p = await parse('--help');
    expect(p.out).toContain('8 a BPF program rejected by the verifier');
    expect(p.out).toContain('doctor');
  });
});
