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
  /** The loaded program's functions, in the order of the log's stack depths (none before a load). */
  functions?: readonly string[];
  log: string;
}

export interface ProgramFigure {
  name: string;
  loaded: boolean;
  /** verified_insns, else what the log says, else null. */
  instructions: number | null;
  limit: number | null;
  /** The stats log's stack depths: the program's frame, then each subprogram's. */
  stackDepths: number[] | null;
  /** Whose depth each one is, when the kernel said (func_info). */
  functions: readonly string[];
}

/** Each program's instruction count, from bpf_prog_info (5.16+) or its log. */
export function programFigures(programs: readonly LoadedProgram[]): ProgramFigure[] {
  return programs.map((p) => {
    const stats = parseVerifierStats(p.log);
    const instructions = p.verifiedInsns > 0 ? p.verifiedInsns : (stats?.processed ?? null);
    return { name: p.name, loaded: p.loaded, instructions, limit: stats?.limit ?? null, stackDepths: parseStackDepths(p.log), functions: p.functions ?? [] };
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

/**
 * The kernel's limit on the stack of a call chain: a program's frame plus
 * those of the subprograms it is inside of, each rounded up (MAX_BPF_STACK).
 */
export const STACK_LIMIT = 512;

/**
 * Every program's deepest call chain must fit in this many bytes of stack,
 * on the oldest kernel's rounding: a quarter of the limit free, so one
 * more spill, a compiler that lays a frame out differently or a kernel that
 * tracks a slot more does not turn a program the kernel loads today into
 * "combined stack size ... Too large" on the next one.
 */
export const STACK_BUDGET = 384;

/** The per-subprogram stack depths of the stats log: `stack depth 312+24+...`. */
export function parseStackDepths(log: string): number[] | null {
  const matches = [...log.matchAll(/^stack depth (\d+(?:\+\d+)*)\s*$/gm)];
  const last = matches.at(-1);
  return last ? last[1]!.split('+').map(Number) : null;
}

/**
 * One frame as kernels before 6.10 (Debian's 6.1) count it against the
 * limit: rounded up to 32 bytes, and at least 32. Later kernels round a
 * JIT-compiled program's frames to 16 bytes, so this is the larger figure.
 */
export function roundedFrame(depth: number): number {
  return Math.ceil(Math.max(depth, 1) / 32) * 32;
}

/** What stackChain needs of the object: bpf-call-graph.ts's answer for one program. */
export interface CallGraph {
  program: string;
  subprograms: readonly string[];
  calls: ReadonlyMap<string, readonly string[]>;
}

/** The deepest chain from the program down: each live function's frame, rounded. */
function deepestChain(graph: CallGraph, depthOf: ReadonlyMap<string, number>): number {
  const memo = new Map<string, number>();
  const chain = (f: string): number => {
    const known = memo.get(f);
    if (known !== undefined) return known;
    const own = depthOf.get(f);
    if (own === undefined) return 0; // removed as dead code: never called
    const below = Math.max(0, ...(graph.calls.get(f) ?? []).map(chain));
    memo.set(f, roundedFrame(own) + below);
    return memo.get(f)!;
  };
  return chain(graph.program);
}

/** The ways to keep `keep` of `items` in order (the subprograms the verifier left). */
function subsequences<T>(items: readonly T[], keep: number): T[][] {
  if (keep === 0) return [[]];
  if (items.length < keep) return [];
  const [first, ...rest] = items;
  return [...subsequences(rest, keep - 1).map((s) => [first!, ...s]), ...subsequences(rest, keep)];
}

/**
 * The deepest call chain's stack, in bytes on 6.1's rounding, from the
 * log's depths and the object's call graph. The log gives the program's
 * own frame, then one per subprogram the verifier kept, in the kernel's
 * order; `functions` (the loaded program's func_info) names them. Without
 * names (a log alone), subprograms the verifier found unreachable (a
 * .rodata option switched them off) leave it unknown which figure is
 * whose: of every way to leave them out that keeps each remaining
 * subprogram called by a remaining one, the deepest answer is taken.
 */
export function stackChain(depths: readonly number[], graph: CallGraph, functions: readonly string[] = []): number {
  if (functions.length === depths.length && functions[0] === graph.program) {
    return deepestChain(graph, new Map(functions.map((f, i) => [f, depths[i]!] as [string, number])));
  }
  const [own = 0, ...rest] = depths;
  let worst = 0;
  for (const live of subsequences(graph.subprograms, Math.min(rest.length, graph.subprograms.length))) {
    const liveSet = new Set([graph.program, ...live]);
    const reachable = live.every((f) =>
      [...liveSet].some((caller) => caller !== f && (graph.calls.get(caller) ?? []).includes(f)),
    );
    if (!reachable) continue;
    const depthOf = new Map<string, number>([[graph.program, own], ...live.map((f, i) => [f, rest[i]!] as [string, number])]);
    worst = Math.max(worst, deepestChain(graph, depthOf));
  }
  // No assignment fits (a graph that does not match the object loaded): every frame on one chain.
  return worst || depths.reduce((sum, d) => sum + roundedFrame(d), 0);
}
