// Every BPF program, under every combination of the options that change what
// is loaded, verifies within VERIFIER_BUDGET on this kernel, and its deepest
// call chain (its own frame and the subprograms' it is inside of, rounded
// as 6.1 rounds them) fits STACK_BUDGET. The kernel matrix
// (kernel-matrix.test.ts) runs the same check on Debian's kernels.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { measureVerifierCosts } from '../../src/kernel/budget.js';
import { bpfCallGraphs } from '../../src/kernel/bpf-call-graph.js';
import { STACK_BUDGET, STACK_LIMIT, VERIFIER_BUDGET } from '../../src/kernel/verifier.js';
import { repoRoot, requireRoot } from '../support/fixture.js';

beforeAll(() => requireRoot());

it('every program verifies within the instruction and stack budgets under every load variant', () => {
  const report = measureVerifierCosts(join(repoRoot, 'build', 'bpf', 'profiler.bpf.o'));
  console.log(`verifier cost on ${report.release} (budget ${VERIFIER_BUDGET} instructions, ${STACK_BUDGET} of ${STACK_LIMIT} stack bytes):`);
  for (const c of report.costs) {
    console.log(`  ${c.program.padEnd(20)} ${String(c.instructions).padStart(8)} ${String(c.stack).padStart(5)} B  ${c.variant}`);
  }
  expect(report.failures).toEqual([]);
  expect(report.stackBudget).toBe(STACK_BUDGET);
  // The three programs (uprobe, CPU sampler, off-CPU switch) in each of the 16 variants.
  expect(report.costs).toHaveLength(48);
  for (const c of report.costs) {
    expect(c.instructions, `${c.program} (${c.variant})`).not.toBeNull();
    expect(c.instructions!, `${c.program} (${c.variant})`).toBeLessThanOrEqual(VERIFIER_BUDGET);
    // At least the program's own frame: a figure of 0 would mean the depths were not read.
    expect(c.stack, `${c.program} (${c.variant})`).toBeGreaterThanOrEqual(32);
    expect(c.stack!, `${c.program} (${c.variant})`).toBeLessThanOrEqual(STACK_BUDGET);
    expect(c.withinBudget).toBe(true);
  }
  // The walks are subprogram chains: the sampler's deepest runs through them.
  const sampler = report.costs.filter((c) => c.program === 'sample_stack').map((c) => c.stack!);
  expect(Math.max(...sampler)).toBeGreaterThan(256);
});

it('reads the calls of the built object: the deepest chains run through the walks', () => {
  const graphs = bpfCallGraphs(readFileSync(join(repoRoot, 'build', 'bpf', 'profiler.bpf.o')));
  expect(graphs.map((g) => g.program).sort()).toEqual(['learn_global_state', 'offcpu_switch', 'sample_stack']);
  const offcpu = graphs.find((g) => g.program === 'offcpu_switch')!;
  // The static subprograms (called through the .text section symbol) and the global ones.
  expect(offcpu.subprograms.slice(0, 4)).toEqual(['switched_in', 'flush_idle', 'offcpu_thread_of', 'idle_wait']);
  expect(offcpu.calls.get('lua_thread_step')).toEqual(['native_walk_step']);
  expect(offcpu.calls.get('native_walk_step')).toEqual(['resolve_row', 'read_windowed']);
  expect(graphs.find((g) => g.program === 'learn_global_state')!.subprograms).toEqual([]);
});
