// Loads the BPF object once for every combination of the options that change
// what the kernel verifies (kernel stacks, --lines, --unwind, --label uri) and reports
// each program's instruction count and the stack of its deepest call chain:
// what the budget test, the kernel matrix and `doctor` check against
// VERIFIER_BUDGET and STACK_BUDGET. Each load is in wall mode, so
// every program is verified (the CPU sampler and the off-CPU switch are
// checked independently of each other: a mode that loads one of them gets
// the same figure for it).
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { NativeError } from '../native/addon.js';
import { ProfilerObject } from '../native/profiler-object.js';
import { describeLoadFailure } from './load-error.js';
import { bpfCallGraphs } from './bpf-call-graph.js';
import { programFigures, STACK_BUDGET, stackChain, VERIFIER_BUDGET } from './verifier.js';

export interface LoadVariant {
  kernelStacks: boolean;
  lines: 'definition' | 'current';
  unwind: 'cfi' | 'fp';
  /** --label uri: the sampler reads each sample's request URI. */
  uriLabels: boolean;
}

/** Every combination: each flag is a .rodata constant the verifier prunes by. */
export const LOAD_VARIANTS: readonly LoadVariant[] = [false, true].flatMap((uriLabels) =>
  [true, false].flatMap((kernelStacks) =>
    (['definition', 'current'] as const).flatMap((lines) =>
      (['cfi', 'fp'] as const).map((unwind) => ({ kernelStacks, lines, unwind, uriLabels })),
    ),
  ),
);

export function variantName(v: LoadVariant): string {
  return `${v.kernelStacks ? 'kernel' : 'no-kernel'},lines=${v.lines},unwind=${v.unwind}${v.uriLabels ? ',label=uri' : ''}`;
}

export interface VariantCost {
  variant: string;
  program: string;
  /** null when the kernel gave no count (before 5.16 and no log line). */
  instructions: number | null;
  /**
   * Bytes of stack on the deepest call chain, each frame rounded as 6.1
   * rounds it (verifier.ts stackChain); null when the log gave no depths.
   */
  stack?: number | null;
  /** Both figures within their budgets. */
  withinBudget: boolean;
}

export interface BudgetReport {
  release: string;
  budget: number;
  /** Bytes; absent in reports from before the stack was measured. */
  stackBudget?: number;
  costs: VariantCost[];
  /** The one line of a variant the kernel rejected, if any did. */
  failures: { variant: string; error: string }[];
}

/** Loads each variant in a session of its own (nothing is attached). */
export function measureVerifierCosts(objectPath: string, btfPath?: string): BudgetReport {
  const costs: VariantCost[] = [];
  const failures: BudgetReport['failures'] = [];
  const graphs = new Map(bpfCallGraphs(readFileSync(objectPath)).map((g) => [g.program, g]));
  for (const v of LOAD_VARIANTS) {
    const session = ProfilerObject.open(objectPath, btfPath ? { btfPath } : {});
    try {
      session.configure({ kernelStacks: v.kernelStacks, leafPc: v.lines === 'current', unwindCfi: v.unwind === 'cfi', uriLabels: v.uriLabels, mode: 'wall' });
      try {
        session.load();
      } catch (err) {
        const { message, code } = err as NativeError;
        failures.push({ variant: variantName(v), error: describeLoadFailure({ error: { message, code }, programs: session.programs(), release: release() }).message });
        continue;
      }
      for (const f of programFigures(session.programs())) {
        const graph = graphs.get(f.name);
        const stack = f.stackDepths && graph ? stackChain(f.stackDepths, graph, f.functions) : null;
        costs.push({
          variant: variantName(v),
          program: f.name,
          instructions: f.instructions,
          stack,
          withinBudget:
            f.instructions !== null && f.instructions <= VERIFIER_BUDGET && stack !== null && stack <= STACK_BUDGET,
        });
      }
    } finally {
      session.close();
    }
  }
  return { release: release(), budget: VERIFIER_BUDGET, stackBudget: STACK_BUDGET, costs, failures };
}

/** The largest count per program over all variants. */
export function worstPerProgram(costs: readonly VariantCost[]): Map<string, VariantCost> {
  const worst = new Map<string, VariantCost>();
  for (const c of costs) {
    const prev = worst.get(c.program);
    if (!prev || (c.instructions ?? Infinity) > (prev.instructions ?? -1)) worst.set(c.program, c);
  }
  return worst;
}

/** The deepest stack per program over all variants. */
export function deepestStackPerProgram(costs: readonly VariantCost[]): Map<string, VariantCost> {
  const worst = new Map<string, VariantCost>();
  for (const c of costs) {
    const prev = worst.get(c.program);
    if (!prev || (c.stack === null ? Infinity : (c.stack ?? -1)) > (prev.stack ?? -1)) worst.set(c.program, c);
  }
  return worst;
}
