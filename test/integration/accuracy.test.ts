// The profile of a loaded worker must agree with the app's own measurement
// of where its CPU time went (os.clock deltas served on /truth).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { definitionLine, type Fixture, profileToFolded, requireRoot, startFixture, startLoad } from '../support/fixture.js';

const FUNCTIONS = ['alpha', 'beta', 'gamma'] as const;
const TOLERANCE_PP = 5;

interface Truth {
  total: number;
  alpha: number;
  beta: number;
  gamma: number;
}

/** Share of samples whose stack holds the function defined at work.lua:line. */
function shareOf(folded: string, line: number): number {
  const frame = new RegExp(`work\\.lua:${line}\\)$`);
  let total = 0;
  let hit = 0;
  for (const s of parseFolded(folded)) {
    total += s.count;
    if (s.frames.some((f) => frame.test(f))) hit += s.count;
  }
  return total ? (100 * hit) / total : 0;
}

for (const jit of ['jit-off', 'jit-on'] as const) {
  describe(`CPU shares match the app's own measurement (${jit})`, () => {
    let fixture: Fixture;

    beforeAll(async () => {
      requireRoot();
      fixture = await startFixture({ jit });
      for (let i = 0; i < 20; i++) await fixture.get('/work');
    });

    afterAll(async () => {
      await fixture?.stop();
    });

    it('puts each Lua function within 5 percentage points of /truth', async () => {
      const load = startLoad(fixture.port, '/work', 12);
      let truth: Truth | null = null;
      let resetDone: Promise<unknown> | null = null;
      const run = await profileToFolded(['--pid', String(fixture.master), '--duration', '6', '--frequency', '499'], async (line) => {
        if (line.includes('"msg":"sampling"')) resetDone = fixture.get('/truth/reset');
        if (line.includes('"msg":"sampling stopped"')) {
          await resetDone;
          truth = JSON.parse(await fixture.get('/truth')) as Truth;
        }
      });
      load.child.kill();
      await load.done;

      expect(run.code, run.stderr).toBe(0);
      expect(truth, 'the profiler never logged its phases').not.toBeNull();
      const t = truth as unknown as Truth;
      const report: Record<string, { profile: number; truth: number }> = {};
      for (const fn of FUNCTIONS) {
        report[fn] = { profile: shareOf(run.folded, definitionLine(fn)), truth: (100 * t[fn]) / t.total };
      }
      console.log(`${jit} shares (%):`, JSON.stringify(report));
      for (const fn of FUNCTIONS) {
        expect(report[fn].truth, `${fn} did not run`).toBeGreaterThan(5);
        expect(Math.abs(report[fn].profile - report[fn].truth), `${fn}: ${JSON.stringify(report[fn])}`).toBeLessThan(TOLERANCE_PP);
      }
    });
  });
}
