// What the kernel's verifier said about each BPF program: how many
// instructions it processed against its limit, for the budget test, for
// `doctor`, and for the one line a rejected program gets.

/**
 * Every program must verify within this many instructions on every kernel
 * we support: a tenth of the kernel's limit (1,000,000). The verifier's
 * cost of one program is not a property of the program alone: it changes
 * from one kernel release to the next, by 14x for a walk written as a
 * bpf_loop over stack state (docs/ARCHITECTURE.md §4), so a program must
 * sit far below the limit on every kernel we test to load on the ones we
 * do not.
 */
export const VERIFIER_BUDGET = 100_000;

export interface VerifierStats {
  /** Instructions the verifier processed. */
  processed: number;
  /** The kernel's limit (1,000,000 on every kernel since 5.2). */
  limit: number;
}

/** The closing statistics line of a verifier log: `processed N insns (limit M) ...`. */
export function parseVerifierStats(log: string): VerifierStats | null {
  const matches = [...log.matchAll(/processed (\d+) insns \(limit (\d+)\)/g)];
  const last = matches.at(-1);
  return last ? { processed: Number(last[1]), limit: Number(last[2]) } : null;
}

/** One program as the addon reports it after a load (NativeProgramInfo). */
export interface LoadedProgram {
  name: string;
  loaded: boolean;
  verifiedInsns: number;
  log: string;
}

export interface ProgramFigure {
  name: string;
  loaded: boolean;
  /** verified_insns, else what the log says, else null. */
  instructions: number | null;
  limit: number | null;
}

/** Each program's instruction count, from bpf_prog_info (5.16+) or its log. */
export function programFigures(programs: readonly LoadedProgram[]): ProgramFigure[] {
  return programs.map((p) => {
    const stats = parseVerifierStats(p.log);
    const instructions = p.verifiedInsns > 0 ? p.verifiedInsns : (stats?.processed ?? null);
    return { name: p.name, loaded: p.loaded, instructions, limit: stats?.limit ?? null };
  });
}

/**
 * The program the kernel rejected, after a failed load: libbpf loads
 * programs in order and stops at the first failure, then unloads the ones
 * before it, so it is the last program that left a log.
 */
export function rejectedProgram(programs: readonly LoadedProgram[]): LoadedProgram | null {
  return [...programs].reverse().find((p) => !p.loaded && p.log.trim() !== '') ?? null;
}

/**
 * The last lines of a verifier log that say why it gave up, for the
 * one-line error: the line before the statistics, when there is one.
 */
export function verifierReason(log: string): string | null {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const stats = lines.findIndex((l) => /^processed \d+ insns/.test(l));
  const before = (stats >= 0 ? lines.slice(0, stats) : lines).filter(
    (l) => !/^(verification time|stack depth|Func#\d+ .* is safe)/.test(l),
  );
  return before.at(-1) ?? null;
}
