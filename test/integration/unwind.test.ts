// Native frames without frame pointers: on Debian's nginx (built without
// them), the .eh_frame unwinder must carry nearly every sample from the Lua
// code down through ngx_lua and nginx to main, with nothing unknown between.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameKind } from '../../src/report/frame.js';
import { parseFolded } from '../../src/report/fold.js';
import { type Fixture, profileToFolded, requireRoot, sleep, startFixture, startLoad } from '../support/fixture.js';

const ROOT = ['_start', '__libc_start_main', '__libc_start_call_main', 'main'];

for (const jit of ['jit-on', 'jit-off'] as const) {
  describe(`native frames below Lua code (${jit})`, () => {
    let fixture: Fixture;

    beforeAll(async () => {
      requireRoot();
      fixture = await startFixture({ jit });
      for (let i = 0; i < 10; i++) await fixture.get('/work');
    });

    afterAll(async () => {
      await fixture?.stop();
    });

    it('reaches main in at least 97% of samples, with no unknown frame between the Lua code and the root', async () => {
      const work = startLoad(fixture.port, '/work', 8, 3);
      const hash = startLoad(fixture.port, '/hash', 8, 1);
      await sleep(300);
      const run = await profileToFolded(['--pid', String(fixture.master), '--duration', '4', '--frequency', '499']);
      work.child.kill();
      hash.child.kill();
      await Promise.all([work.done, hash.done]);
      expect(run.code, run.stderr).toBe(0);

      const stacks = parseFolded(run.folded);
      const total = stacks.reduce((n, s) => n + s.count, 0);
      const rooted = stacks.filter((s) => ROOT.every((f, i) => s.frames[i] === f));
      const share = rooted.reduce((n, s) => n + s.count, 0) / total;
      console.log(`${jit}: ${(100 * share).toFixed(2)}% of ${total} samples reach main`);
      expect(share, stacks.filter((s) => !rooted.includes(s)).slice(0, 5).map((s) => s.frames.join(';')).join('\n')).toBeGreaterThanOrEqual(0.97);

      for (const s of rooted) {
        const firstLua = s.frames.findIndex((f) => frameKind(f) === 'lua');
        if (firstLua < 0) continue;
        const below = s.frames.slice(0, firstLua);
        expect(below.some((f) => f === '[unknown]' || f === '[LuaJIT VM]'), s.frames.join(';')).toBe(false);
        // How a request reaches Lua: the content phase and ngx_lua's thread runner.
        expect(below, s.frames.join(';')).toContain('ngx_http_lua_run_thread');
      }
      expect(run.stderr).toMatch(/\d+\.\d% of native walks complete/);
    });
  });
}
