// The kernel matrix: Debian's own 6.1 and 6.12 kernels booted under qemu
// (scripts/kernel-vm/), plus the host's kernel, each running
// test/kernel-matrix/guest-check.sh: `doctor --json` (every program within
// the verifier's instruction and stack budgets under every load variant) and repeated one-shot
// profiles of the fixture nginx under load, each with Lua frames, stacks
// that reach main() and no lost sample, and one off-CPU profile of the
// fixture's blocking handlers against their own measurement. A kernel that cannot be fetched or
// booted fails the test: it never skips.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOAD_VARIANTS } from '../../src/kernel/budget.js';
import { STACK_BUDGET, STACK_LIMIT, VERIFIER_BUDGET } from '../../src/kernel/verifier.js';
import { parseFolded } from '../../src/report/fold.js';
import { repoRoot, requireRoot } from '../support/fixture.js';
import { BLOCKING_FUNCTIONS, type BlockingTruth, profileShares, truthShares } from '../support/offcpu.js';

const run = promisify(execFile);
const RUNS = 3;
const SECONDS = 5;
const GUEST_CHECK = join(repoRoot, 'test', 'kernel-matrix', 'guest-check.sh');

interface ProfileSummary {
  totalSamples: number;
  lost: number;
  counters: { samplesInLua: number; unwoundSamples: number; unwindComplete: number };
}

interface DoctorReport {
  ok: boolean;
  release: string;
  budget: {
    stackBudget?: number;
    costs: { program: string; variant: string; instructions: number | null; stack?: number | null }[];
    failures: unknown[];
  } | null;
}

/** Fetches (cached) and boots one kernel line, or runs on the host; returns the output folder. */
async function runMatrixEntry(line: 'host' | '6.1' | '6.12', out: string): Promise<void> {
  const check = ['bash', GUEST_CHECK, out, String(RUNS), String(SECONDS)];
  if (line === 'host') {
    await run(check[0], check.slice(1), { cwd: repoRoot, timeout: 300_000 });
    return;
  }
  const { stdout } = await run('bash', [join(repoRoot, 'scripts/kernel-vm/fetch-kernel.sh'), line], { timeout: 600_000 });
  const kernelDir = stdout.trim().split('\n').at(-1)!;
  try {
    await run('bash', [join(repoRoot, 'scripts/kernel-vm/run.sh'), kernelDir, out, '--timeout', '480', '--', ...check], {
      cwd: repoRoot,
      timeout: 540_000,
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    // What the guest said is the reason; run.sh's own lines only say that it failed.
    const guest = existsSync(join(out, 'guest.log')) ? readFileSync(join(out, 'guest.log'), 'utf8').split('\n').slice(-30).join('\n') : '(no guest.log)';
    throw new Error(`${(err as Error).message}\nlast lines of the guest's output:\n${guest}`);
  }
}

const outs: string[] = [];
/** Per kernel release: its doctor report, for docs/KERNELS.md. */
const reports = new Map<string, DoctorReport>();
beforeAll(() => requireRoot());
afterAll(() => {
  for (const dir of outs) rmSync(dir, { recursive: true, force: true });
  // WRITE_KERNELS_DOC=1 turns this run's figures into docs/KERNELS.md.
  if (process.env.WRITE_KERNELS_DOC === '1' && reports.size > 0) writeFileSync(join(repoRoot, 'docs', 'KERNELS.md'), kernelsDoc(reports));
});

function kernelsDoc(byRelease: Map<string, DoctorReport>): string {
  const L = [
    '# Kernels: what the verifier spends on each program',
    '',
    'Written by `WRITE_KERNELS_DOC=1 npx vitest run test/integration/kernel-matrix.test.ts` (as root): the kernel matrix',
    '(the host\'s kernel, and Debian\'s 6.1 and 6.12 booted under qemu by `scripts/kernel-vm/`) loads every BPF program under',
    'every combination of the options that change what is verified, and reads the instructions the verifier processed',
    `(\`verified_insns\`) and the stack of the program's deepest call chain: its own frame and those of the subprograms`,
    'it is inside of, from the verifier\'s per-function depths (named by the program\'s func_info) and the object\'s calls,',
    `each frame rounded up to 32 bytes as 6.1 rounds it. The budgets are ${VERIFIER_BUDGET.toLocaleString('en-US')} instructions per program, a tenth`,
    `of the kernel's limit, and ${STACK_BUDGET} bytes of stack, a quarter of the kernel's ${STACK_LIMIT} free (\`src/kernel/verifier.ts\`);`,
    '`npm test` fails above either. Each cell: instructions / stack bytes. Do not edit by hand.',
    '',
  ];
  for (const [release, report] of byRelease) {
    const variants = [...new Set(report.budget!.costs.map((c) => c.variant))];
    const programs = [...new Set(report.budget!.costs.map((c) => c.program))];
    L.push(`## ${release}`, '', `| variant | ${programs.join(' | ')} |`, `|---|${programs.map(() => '---:').join('|')}|`);
    for (const v of variants) {
      const cells = programs.map((p) => {
        const cost = report.budget!.costs.find((c) => c.variant === v && c.program === p);
        return `${cost?.instructions?.toLocaleString('en-US') ?? 'n/a'} / ${cost?.stack ?? 'n/a'}`;
      });
      L.push(`| ${v} | ${cells.join(' | ')} |`);
    }
    L.push('');
  }
  return L.join('\n');
}

describe.each(['host', '6.1', '6.12'] as const)('kernel %s', (line) => {
  let out = '';
  beforeAll(async () => {
    out = mkdtempSync(join('/var/tmp', `apisix-profile-matrix-${line}-`));
    outs.push(out);
    await runMatrixEntry(line, out);
  }, 600_000);

  it('doctor: every check passes and every program verifies within the instruction and stack budgets under every variant', () => {
    const doctor = JSON.parse(readFileSync(join(out, 'doctor.json'), 'utf8')) as DoctorReport;
    reports.set(line === 'host' ? `${doctor.release} (the host)` : doctor.release, doctor);
    console.log(`kernel ${doctor.release}: verifier cost (budget ${VERIFIER_BUDGET} instructions, ${STACK_BUDGET} stack bytes)`);
    for (const c of doctor.budget?.costs ?? []) {
      console.log(`  ${c.program.padEnd(20)} ${String(c.instructions).padStart(8)} ${String(c.stack).padStart(5)} B  ${c.variant}`);
    }
    expect(doctor.ok, readFileSync(join(out, 'doctor.log'), 'utf8')).toBe(true);
    expect(doctor.budget?.failures).toEqual([]);
    // Every program (uprobe, CPU sampler, off-CPU switch) under every load variant.
    expect(doctor.budget?.costs).toHaveLength(3 * LOAD_VARIANTS.length);
    for (const c of doctor.budget!.costs) {
      expect(c.instructions, `${c.program} ${c.variant}`).not.toBeNull();
      expect(c.instructions!, `${c.program} ${c.variant}`).toBeLessThanOrEqual(VERIFIER_BUDGET);
      // The guest's own log figures: at least one rounded frame, within the stack budget.
      expect(c.stack, `${c.program} ${c.variant}`).toBeGreaterThanOrEqual(32);
      expect(c.stack!, `${c.program} ${c.variant}`).toBeLessThanOrEqual(STACK_BUDGET);
    }
  });

  it.each(Array.from({ length: RUNS }, (_, i) => i + 1))('profile %i: samples, Lua frames, stacks that reach main, 0 lost', (i) => {
    const log = readFileSync(join(out, `profile-${i}.log`), 'utf8');
    expect(readFileSync(join(out, `profile-${i}.exit`), 'utf8').trim(), log).toBe('0');
    const summary = JSON.parse(readFileSync(join(out, `profile-${i}.json`), 'utf8')) as ProfileSummary;
    const stacks = parseFolded(readFileSync(join(out, `profile-${i}.folded`), 'utf8'));
    const total = stacks.reduce((n, s) => n + s.count, 0);
    const withLua = stacks.filter((s) => s.frames.some((f) => f.includes('fixtures/app/'))).reduce((n, s) => n + s.count, 0);
    const fromMain = stacks.filter((s) => s.frames.includes('main')).reduce((n, s) => n + s.count, 0);
    console.log(`kernel ${line} profile ${i}: ${summary.totalSamples} samples, ${withLua} with fixture Lua frames, ${fromMain} from main, ${summary.lost} lost`);
    expect(summary.lost, log).toBe(0);
    // 499 Hz for 5 s of a saturated worker: far more than this even under TCG.
    expect(summary.totalSamples, log).toBeGreaterThan(500);
    expect(total).toBe(summary.totalSamples);
    expect(withLua / total).toBeGreaterThan(0.5);
    expect(fromMain / total).toBeGreaterThan(0.9);
  });

  it('off-CPU profile: each FFI blocking handler within 3 pp of its own measurement, 0 lost switches', () => {
    const log = readFileSync(join(out, 'offcpu.log'), 'utf8');
    expect(readFileSync(join(out, 'offcpu.exit'), 'utf8').trim(), log).toBe('0');
    const summary = JSON.parse(readFileSync(join(out, 'offcpu.json'), 'utf8')) as { time: { switchesBlocked: number; lostSwitches: number; idleUs: number; blockedUs: number } };
    const folded = readFileSync(join(out, 'offcpu.folded'), 'utf8');
    const truth = truthShares(JSON.parse(readFileSync(join(out, 'offcpu-truth.json'), 'utf8')) as BlockingTruth);
    const got = profileShares(folded);
    const report = Object.fromEntries(BLOCKING_FUNCTIONS.map((f) => [f, { profile: Number(got[f].toFixed(2)), truth: Number(truth[f].toFixed(2)) }]));
    console.log(`kernel ${line} off-CPU: ${summary.time.switchesBlocked} blocking switches, ${summary.time.lostSwitches} lost, ${(summary.time.blockedUs / 1e6).toFixed(2)} s blocked, ${(summary.time.idleUs / 1e6).toFixed(2)} s idle`, JSON.stringify(report));
    expect(summary.time.lostSwitches, log).toBe(0);
    expect(summary.time.switchesBlocked, log).toBeGreaterThan(50);
    // The guest blocks in the FFI handlers only (/block?only=ffi).
    for (const f of ['ffi_usleep', 'ffi_poll'] as const) expect(truth[f], `${f} did not block`).toBeGreaterThan(20);
    for (const f of BLOCKING_FUNCTIONS) expect(Math.abs(got[f] - truth[f]), `${f}: ${JSON.stringify(report[f])}`).toBeLessThan(3);
  });
});
