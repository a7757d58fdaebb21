import { describe, expect, it } from 'vitest';
import { runWorkOf, samplesRatio } from '../../src/commands/diff.js';
import { CliError } from '../../src/errors.js';
import { diffFunctions } from '../../src/report/diff.js';
import { DEFAULT_MIN_SAMPLES, gateLogLine, judgeDiff, offendingNames, renderGateMarkdown } from '../../src/report/gate.js';
import { judgeSamples } from '../../src/report/gate-work.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';

/** A run: `f` and `g` samples under main. */
const run = (f: number, g: number): Stack[] => [
  { frames: ['main', 'f'], count: f },
  { frames: ['main', 'g'], count: g },
];
const work = (samples: number, requests: number, frequencyHz = 99) => ({ samples, frequencyHz, requests });

describe('judgeSamples: CPU per request', () => {
  it('fails when the head took more than ratio times the CPU per request, and names where it went', () => {
    // Same shares (f 50%), but every request costs 1.3 times the samples: shares cannot see this.
    const [b, h] = [mergeIdentical(run(500, 500)), mergeIdentical(run(650, 650))];
    const r = judgeSamples(diffFunctions(b, h), { before: work(1000, 1000), after: work(1300, 1000) }, 1.1, DEFAULT_MIN_SAMPLES);
    expect(r.crossed).toBe(true);
    expect(r.ratio).toBeCloseTo(1.3, 12);
    expect(r.before.samplesPerRequest).toBe(1);
    expect(r.before.cpuMsPerRequest).toBeCloseTo(1000 / 99, 9);
    expect(r.grewMost.map((f) => f.name)).toEqual(['f', 'g']);
    expect(r.grewMost[0].grewMs).toBeCloseTo((0.15 * 1000) / 99, 9);
    // The shares gate passes the same runs.
    const shares = judgeDiff(b, h, { functionPp: 1, minSamples: DEFAULT_MIN_SAMPLES });
    expect(shares.verdict).toBe('pass');
  });

  it('compares runs at different frequencies and lengths by CPU time, and passes exactly the ratio', () => {
    const d = diffFunctions(mergeIdentical(run(99, 99)), mergeIdentical(run(999, 999)));
    // 198 samples at 99 Hz for 100 requests = 20 ms each; 1998 at 999 Hz for 50 requests = 40 ms each: 2x.
    const r = judgeSamples(d, { before: work(198, 100, 99), after: work(1998, 50, 999) }, 2, 0);
    expect(r.ratio).toBeCloseTo(2, 12);
    expect(r.crossed).toBe(false);
    expect(judgeSamples(d, { before: work(198, 100, 99), after: work(1998, 50, 999) }, 1.99, 0).crossed).toBe(true);
  });

  it('leaves out of grewMost functions with too few samples, and those that did not grow', () => {
    const d = diffFunctions(mergeIdentical(run(10, 990)), mergeIdentical(run(20, 900)));
    const r = judgeSamples(d, { before: work(1000, 1000), after: work(920, 1000) }, 1.1, 30);
    expect(r.grewMost).toEqual([]);
    expect(r.crossed).toBe(false);
  });

  it('rejects a ratio not above 1 and work without requests', () => {
    const d = diffFunctions(mergeIdentical(run(1, 1)), mergeIdentical(run(1, 1)));
    expect(() => judgeSamples(d, { before: work(2, 1), after: work(2, 1) }, 1, 0)).toThrow(RangeError);
    expect(() => judgeSamples(d, { before: work(2, 0), after: work(2, 1) }, 1.1, 0)).toThrow(/base requests/);
    expect(() => judgeDiff(mergeIdentical(run(1, 1)), mergeIdentical(run(1, 1)), { samplesRatio: 1.1, minSamples: 0 })).toThrow(/work/);
  });
});

describe('the verdict with --fail-on-samples', () => {
  const b = mergeIdentical(run(500, 500));
  const h = mergeIdentical(run(800, 500));
  const judged = judgeDiff(b, h, { functionPp: 50, samplesRatio: 1.2, minSamples: 30, work: { before: work(1000, 1000), after: work(1300, 1000) } });

  it('leads the Markdown with the ratio and the functions whose own CPU per request grew, largest first', () => {
    expect(judged.verdict).toBe('fail');
    const lines = renderGateMarkdown(judged).split('\n');
    expect(lines[0]).toBe('**✗ Gate failed:** CPU per request grew 1.30× (more than 1.2×), largest first.');
    expect(lines[2]).toBe('CPU per request: base 10.1 ms, head 13.1 ms. The functions whose own CPU per request grew most:');
    expect(lines[6]).toBe('| 1 | `f` | 5.05 ms → 8.08 ms | **+3.03 ms** |');
    expect(lines.at(-2)).toMatch(/^Gate: `--fail-on-function 50` `--fail-on-samples 1.2` `--min-samples 30` · .*; CPU per request: base 10.1 ms \(1000 samples at 99 Hz \/ 1000 requests\), head 13.1 ms/);
    expect(gateLogLine(judged)).toBe('gate failed: CPU per request grew 1.30× (more than 1.2×: 10.1 ms → 13.1 ms), most in f (+3.03 ms)');
    expect(offendingNames(judged)).toEqual({ functions: [], samplesRatio: 1.3 });
  });

  it('says the ratio when it passes', () => {
    const ok = judgeDiff(b, b, { samplesRatio: 1.2, minSamples: 30, work: { before: work(1000, 1000), after: work(1000, 1000) } });
    expect(ok.verdict).toBe('pass');
    expect(renderGateMarkdown(ok).split('\n')[0]).toBe("**✓ Gate passed:** CPU per request 1.00× the base's (at most 1.2×).");
    expect(gateLogLine(ok)).toBe("gate passed: CPU per request 1.00× the base's (at most 1.2×)");
  });
});

describe('diff --base-summary/--head-summary: reading the work of a run', () => {
  const summary = (o: object) => JSON.stringify({ title: 't', totalSamples: 1136, frequencyHz: 999, command: { argv: ['wrk'], requests: 1158 }, ...o });
  const error = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(CliError);
      return (e as CliError).message;
    }
    throw new Error('no error');
  };

  it('takes samples, frequency and requests from a profile -- wrk summary of the same run', () => {
    expect(runWorkOf(summary({}), 'b.json', '--base-summary', 1136, 'b.folded')).toEqual({ samples: 1136, frequencyHz: 999, requests: 1158 });
  });

  it('says what is wrong with any other file', () => {
    expect(error(() => runWorkOf('{', 'b.json', '--base-summary', 1, 'b.folded'))).toBe('--base-summary b.json is not JSON: give the --json summary of a profile');
    expect(error(() => runWorkOf('{"verdict":"pass"}', 'b.json', '--base-summary', 1, 'b.folded'))).toMatch(/not the --json summary of a profile/);
    expect(error(() => runWorkOf(summary({ command: undefined }), 'h.json', '--head-summary', 1136, 'h.folded'))).toBe(
      '--head-summary h.json records no request count: profile the load with `apisix-profile --pid M --folded F --json h.json -- wrk ...`',
    );
    expect(error(() => runWorkOf(summary({}), 'h.json', '--head-summary', 1000, 'h.folded'))).toBe(
      '--head-summary h.json summarizes 1136 samples but h.folded holds 1000: give the summary of the same profile',
    );
    expect(error(() => runWorkOf(summary({ time: {} }), 'h.json', '--head-summary', 1136, 'h.folded'))).toMatch(/off-CPU or wall/);
  });

  it('takes a ratio above 1 only', () => {
    expect(samplesRatio('1.1')).toBe(1.1);
    for (const bad of ['1', '0.9', '-2', 'x', '101']) expect(() => samplesRatio(bad)).toThrow(/fail-on-samples must be a ratio above 1/);
  });
});
