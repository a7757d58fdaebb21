// One line for a BPF object the kernel would not load: which program, what
// the verifier said (instructions against its limit, or the reason it gave),
// the kernel release, and what to do. Pure: the caller passes what the addon
// reported.
import { CliError, ExitCode } from '../errors.js';
import { type LoadedProgram, parseVerifierStats, rejectedProgram, verifierReason } from './verifier.js';

export interface LoadFailure {
  /** The addon's error: message and errno name. */
  error: { message: string; code?: string };
  programs: readonly LoadedProgram[];
  /** uname -r */
  release: string;
}

const TRACE_HINT = '--log-level trace prints the verifier\'s log; `apisix-profile doctor` checks this kernel';

/** BPF helpers the programs call, by the id the verifier names them with when it does not know them. */
const HELPER_SINCE: Record<string, string> = {
  bpf_get_current_task_btf: '5.11',
  bpf_task_pt_regs: '5.15',
  bpf_probe_read_user: '5.5',
  bpf_get_stack: '4.18',
};
const HELPER_BY_ID: Record<number, string> = {
  67: 'bpf_get_stack',
  112: 'bpf_probe_read_user',
  158: 'bpf_get_current_task_btf',
  175: 'bpf_task_pt_regs',
};

/** A helper the verifier did not know, from its log ("unknown func bpf_x#N", "invalid func unknown#N"). */
export function missingHelper(log: string): string | null {
  const named = /unknown func (\w+)#(\d+)/.exec(log);
  if (named) return named[1];
  const numbered = /invalid func unknown#(\d+)/.exec(log);
  if (numbered) return HELPER_BY_ID[Number(numbered[1])] ?? `helper #${numbered[1]}`;
  return null;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export function describeLoadFailure(f: LoadFailure): CliError {
  const { error, release } = f;
  const rejected = rejectedProgram(f.programs);
  // The verifier answers EACCES for a program it finds unsafe: that is a
  // rejection, not a missing privilege, when the program left a log.
  if (error.code === 'EPERM' || (error.code === 'EACCES' && !rejected)) {
    return new CliError(
      `the kernel ${release} refused to load BPF programs (${error.code}): run as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE; ${TRACE_HINT}`,
      ExitCode.Permission,
    );
  }
  if (rejected) {
    const helper = missingHelper(rejected.log);
    if (helper) {
      const since = HELPER_SINCE[helper];
      return new CliError(
        `kernel ${release} lacks the BPF helper ${helper} that program ${rejected.name} calls${since ? ` (Linux ${since} or newer has it)` : ''}: upgrade the kernel; ${TRACE_HINT}`,
        ExitCode.KernelUnsupported,
      );
    }
    const stats = parseVerifierStats(rejected.log);
    if (error.code === 'E2BIG' && stats) {
      return new CliError(
        `kernel ${release} rejected BPF program ${rejected.name}: its verifier processed ${fmt(stats.processed)} instructions, over its limit of ${fmt(stats.limit)}; please report it with \`apisix-profile doctor --json\`; ${TRACE_HINT}`,
        ExitCode.BpfRejected,
      );
    }
    const reason = verifierReason(rejected.log);
    return new CliError(
      `kernel ${release} rejected BPF program ${rejected.name} (${error.code ?? 'error'})${reason ? `: ${reason}` : ''}${stats ? ` after ${fmt(stats.processed)} instructions` : ''}; ${TRACE_HINT}`,
      ExitCode.BpfRejected,
    );
  }
  // Nothing reached the verifier: BTF relocation, map creation, or a missing feature.
  return new CliError(`kernel ${release} could not load the BPF object: ${error.message}; ${TRACE_HINT}`, ExitCode.KernelUnsupported);
}
