import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { describeLoadFailure, missingHelper } from '../../src/kernel/load-error.js';
import { LOAD_VARIANTS, variantName, worstPerProgram } from '../../src/kernel/budget.js';
import { parseVerifierStats, programFigures, rejectedProgram, VERIFIER_BUDGET, verifierReason } from '../../src/kernel/verifier.js';

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
