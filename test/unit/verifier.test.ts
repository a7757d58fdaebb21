import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { describeLoadFailure, missingHelper } from '../../src/kernel/load-error.js';
import { LOAD_VARIANTS, variantName, worstPerProgram } from '../../src/kernel/budget.js';
import {
  parseStackDepths,
  parseVerifierStats,
  programFigures,
  rejectedProgram,
  roundedFrame,
  STACK_BUDGET,
  STACK_LIMIT,
  stackChain,
  VERIFIER_BUDGET,
  verifierReason,
} from '../../src/kernel/verifier.js';

// The closing lines of real logs (kernel 6.18): a program that loaded, and
// the earlier sample_stack that crossed the limit.
const OK_LOG = 'verification time 73 usec\nstack depth 8\nprocessed 41 insns (limit 1000000) max_states_per_insn 0 total_states 4 peak_states 4 mark_read 0\n';
const TOO_BIG_LOG = [
  "Func#2 ('read_windowed') is global and assumed valid.",
  'BPF program is too large. Processed 1000001 insn',
  'verification time 4348356 usec',
  'stack depth 312+80+0+112',
  'processed 1000001 insns (limit 1000000) max_states_per_insn 133 total_states 35791 peak_states 81315 mark_read 0',
  '',
].join('\n');

describe('verifier statistics', () => {
  it('reads the instructions processed and the limit', () => {
    expect(parseVerifierStats(OK_LOG)).toEqual({ processed: 41, limit: 1_000_000 });
    expect(parseVerifierStats(TOO_BIG_LOG)).toEqual({ processed: 1_000_001, limit: 1_000_000 });
    expect(parseVerifierStats('')).toBeNull();
  });

  it('prefers verified_insns and falls back to the log (kernels before 5.16)', () => {
    const figures = programFigures([
      { name: 'a', loaded: true, verifiedInsns: 500, log: OK_LOG },
      { name: 'b', loaded: true, verifiedInsns: 0, log: OK_LOG },
      { name: 'c', loaded: true, verifiedInsns: 0, log: '' },
    ]);
    expect(figures.map((f) => f.instructions)).toEqual([500, 41, null]);
  });

  it('names the last program that left a log as the rejected one (libbpf stops there)', () => {
    const programs = [
      { name: 'learn_global_state', loaded: false, verifiedInsns: 0, log: OK_LOG },
      { name: 'sample_stack', loaded: false, verifiedInsns: 0, log: TOO_BIG_LOG },
      { name: 'later', loaded: false, verifiedInsns: 0, log: '' },
    ];
    expect(rejectedProgram(programs)?.name).toBe('sample_stack');
    expect(verifierReason(TOO_BIG_LOG)).toBe('BPF program is too large. Processed 1000001 insn');
  });

  it('covers every combination of the options that change what is verified', () => {
    expect(LOAD_VARIANTS).toHaveLength(16);
    expect(new Set(LOAD_VARIANTS.map(variantName)).size).toBe(16);
    expect(VERIFIER_BUDGET).toBe(100_000);
  });

  it('keeps the worst count per program', () => {
    const worst = worstPerProgram([
      { variant: 'x', program: 'p', instructions: 10, withinBudget: true },
      { variant: 'y', program: 'p', instructions: 30, withinBudget: true },
      { variant: 'z', program: 'q', instructions: 5, withinBudget: true },
    ]);
    expect(worst.get('p')?.variant).toBe('y');
    expect(worst.get('q')?.instructions).toBe(5);
  });
});

describe('one line for a BPF object the kernel would not load', () => {
  const release = '6.18.44';

  it('a program over the verifier limit: which, how far, the kernel, what to do', () => {
    const err = describeLoadFailure({
      error: { message: 'load BPF object x: Argument list too long', code: 'E2BIG' },
      programs: [
        { name: 'learn_global_state', loaded: false, verifiedInsns: 0, log: OK_LOG },
        { name: 'sample_stack', loaded: false, verifiedInsns: 0, log: TOO_BIG_LOG },
      ],
      release,
    });
    expect(err.exitCode).toBe(ExitCode.BpfRejected);
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain('kernel 6.18.44 rejected BPF program sample_stack');
    expect(err.message).toContain('processed 1,000,001 instructions, over its limit of 1,000,000');
    expect(err.message).toContain('--log-level trace');
  });

  it('a helper the kernel lacks is named with the release that has it', () => {
    expect(missingHelper('0: (85) call bpf_task_pt_regs#175\nunknown func bpf_task_pt_regs#175\n')).toBe('bpf_task_pt_regs');
    expect(missingHelper('invalid func unknown#158\n')).toBe('bpf_get_current_task_btf');
    const err = describeLoadFailure({
      error: { message: 'load: Invalid argument', code: 'EINVAL' },
      programs: [{ name: 'sample_stack', loaded: false, verifiedInsns: 0, log: 'unknown func bpf_task_pt_regs#175\nprocessed 12 insns (limit 1000000)\n' }],
      release: '5.10.0',
    });
    expect(err.exitCode).toBe(ExitCode.KernelUnsupported);
    expect(err.message).toMatch(/kernel 5\.10\.0 lacks the BPF helper bpf_task_pt_regs .*Linux 5\.15/);
  });

  it('another verifier refusal gives its reason', () => {
    const err = describeLoadFailure({
      error: { message: 'load: Permission denied', code: 'EACCES' },
      programs: [{ name: 'sample_stack', loaded: false, verifiedInsns: 0, log: 'R1 invalid mem access \'scalar\'\nprocessed 120 insns (limit 1000000)\n' }],
      release,
    });
    // EACCES from the verifier is a refusal of the program, not of the user.
    expect(err.exitCode).toBe(ExitCode.BpfRejected);
    expect(err.message).toContain("rejected BPF program sample_stack (EACCES): R1 invalid mem access 'scalar' after 120 instructions");
    const denied = describeLoadFailure({ error: { message: 'load: Operation not permitted', code: 'EPERM' }, programs: [], release });
    expect(denied.exitCode).toBe(ExitCode.Permission);
  });

  it('refused before any program (no log): the kernel could not load the object', () => {
    const err = describeLoadFailure({ error: { message: 'load BPF object x: No such file or directory', code: 'ENOENT' }, programs: [], release });
    expect(err.exitCode).toBe(ExitCode.KernelUnsupported);
    expect(err.message).toContain('could not load the BPF object');
  });
});

// Stats logs captured on 6.18 (before the stack was reduced), with the
// functions the kernel's func_info named for each figure.
const OFFCPU_CFI_LOG =
  'verification time 23310 usec\nstack depth 312+24+40+64+56+16+48+112\nprocessed 24422 insns (limit 1000000) max_states_per_insn 18 total_states 701 peak_states 399 mark_read 0\n';
const OFFCPU_CFI_FUNCTIONS = ['offcpu_switch', 'switched_in', 'idle_wait', 'native_walk_step', 'resolve_row', 'read_windowed', 'lua_thread_step', 'lua_walk_step'];
const OFFCPU_FP_LOG =
  'verification time 6069 usec\nstack depth 296+24+40+16+112\nprocessed 8207 insns (limit 1000000) max_states_per_insn 4 total_states 248 peak_states 211 mark_read 0\n';
const OFFCPU_FP_FUNCTIONS = ['offcpu_switch', 'switched_in', 'idle_wait', 'read_windowed', 'lua_walk_step'];
// bpfCallGraphs' answer for offcpu_switch in the same object.
const OFFCPU_GRAPH = {
  program: 'offcpu_switch',
  subprograms: ['switched_in', 'idle_wait', 'native_walk_step', 'resolve_row', 'read_windowed', 'request_uri_label', 'lua_thread_step', 'lua_walk_step'],
  calls: new Map<string, string[]>([
    ['offcpu_switch', ['switched_in', 'idle_wait', 'native_walk_step', 'request_uri_label', 'lua_thread_step', 'lua_walk_step']],
    ['native_walk_step', ['resolve_row', 'read_windowed']],
    ['lua_thread_step', ['native_walk_step']],
    ['lua_walk_step', ['read_windowed']],
  ]),
};

describe('stack depth', () => {
  it('reads the per-function depths of the stats line', () => {
    expect(parseStackDepths(OFFCPU_CFI_LOG)).toEqual([312, 24, 40, 64, 56, 16, 48, 112]);
    expect(parseStackDepths(OK_LOG)).toEqual([8]);
    expect(parseStackDepths(TOO_BIG_LOG)).toEqual([312, 80, 0, 112]);
    expect(parseStackDepths('processed 41 insns (limit 1000000)')).toBeNull();
  });

  it('rounds each frame as 6.1 does: up to 32 bytes, at least 32', () => {
    expect([0, 1, 8, 32, 33, 312].map(roundedFrame)).toEqual([32, 32, 32, 32, 64, 320]);
  });

  it('adds the frames of the deepest call chain: 6.1 loaded this program at exactly its 512-byte limit', () => {
    // offcpu_switch 320 + lua_thread_step 64 + native_walk_step 64 + resolve_row 64.
    expect(stackChain(parseStackDepths(OFFCPU_CFI_LOG)!, OFFCPU_GRAPH, OFFCPU_CFI_FUNCTIONS)).toBe(512);
    // Without the native walk: offcpu_switch 320 + lua_walk_step 128 + read_windowed 32.
    expect(stackChain(parseStackDepths(OFFCPU_FP_LOG)!, OFFCPU_GRAPH, OFFCPU_FP_FUNCTIONS)).toBe(480);
  });

  it('without names, takes the deepest way the figures could fall on the functions left', () => {
    // All kept but one: some assignment gives lua_thread_step the 112.
    const unnamed = stackChain(parseStackDepths(OFFCPU_FP_LOG)!, OFFCPU_GRAPH);
    expect(unnamed).toBeGreaterThanOrEqual(480);
    expect(unnamed).toBeLessThanOrEqual(320 + 128 + 64 + 64);
    // Every figure named and present: the same as with names.
    expect(stackChain([312, 24, 40, 64, 56, 16, 40, 48, 112], OFFCPU_GRAPH)).toBe(512);
  });

  it('carries the depths and names into each program figure', () => {
    const [f] = programFigures([{ name: 'offcpu_switch', loaded: true, verifiedInsns: 24422, functions: OFFCPU_CFI_FUNCTIONS, log: OFFCPU_CFI_LOG }]);
    expect(f!.stackDepths).toEqual([312, 24, 40, 64, 56, 16, 48, 112]);
    expect(f!.functions).toEqual(OFFCPU_CFI_FUNCTIONS);
    expect(STACK_BUDGET).toBeLessThanOrEqual(STACK_LIMIT * 0.75);
  });
});
