// Every BPF program, under every combination of the options that change what
// is loaded, verifies within VERIFIER_BUDGET on this kernel. The kernel
// matrix (kernel-matrix.test.ts) runs the same check on Debian's kernels.
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { measureVerifierCosts } from '../../src/kernel/budget.js';
import { VERIFIER_BUDGET } from '../../src/kernel/verifier.js';
import { repoRoot, requireRoot } from '../support/fixture.js';

beforeAll(() => requireRoot());

it('every program verifies within the budget under every load variant', () => {
  const report = measureVerifierCosts(join(repoRoot, 'build', 'bpf', 'profiler.bpf.o'));
  console.log(`verifier cost on ${report.release} (budget ${VERIFIER_BUDGET}):`);
  for (const c of report.costs) console.log(`  ${c.program.padEnd(20)} ${String(c.instructions).padStart(8)}  ${c.variant}`);
  expect(report.failures).toEqual([]);
  // The three programs (uprobe, CPU sampler, off-CPU switch) in each of the 16 variants.
  expect(report.costs).toHaveLength(48);
  for (const c of report.costs) {
    expect(c.instructions, `${c.program} (${c.variant})`).not.toBeNull();
    expect(c.instructions!, `${c.program} (${c.variant})`).toBeLessThanOrEqual(VERIFIER_BUDGET);
  }
});
