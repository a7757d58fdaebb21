// Stack shapes that must come out right on every supported LuaJIT build:
// names from call sites, deep recursion, current lines inside compiled
// traces, and C functions called through the FFI.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { frameKind } from '../../src/report/frame.js';
import { parseFolded } from '../../src/report/fold.js';
import { type Stack } from '../../src/report/stack.js';
import { appDir, luajitBuild, profileToFolded, requireRoot, sleep } from '../support/fixture.js';

const shapes = join(appDir, 'shapes.lua');
const source = readFileSync(shapes, 'utf8').split('\n');
const lineOf = (text: string) => {
  const i = source.findIndex((l) => l.includes(text));
  if (i < 0) throw new Error(`shapes.lua has no line with ${text}`);
  return i + 1;
};

let running: ReturnType<typeof spawn> | null = null;

async function profileShape(build: { luajit: string }, mode: string, jit: 'jit-on' | 'jit-off', extra: string[] = []): Promise<Stack[]> {
  const child = spawn(build.luajit, [shapes, mode, jit], { stdio: 'ignore' });
  running = child;
  try {
    await sleep(300);
    const run = await profileToFolded(['--pid', String(child.pid), '--duration', '2', '--frequency', '499', ...extra]);
    expect(run.code, run.stderr).toBe(0);
    return parseFolded(run.folded);
  } finally {
    child.kill('SIGKILL');
  }
}

const total = (stacks: Stack[]) => stacks.reduce((n, s) => n + s.count, 0);
const frameName = (f: string) => f.slice(0, f.lastIndexOf(' ('));

beforeAll(() => requireRoot());
afterEach(() => {
  running?.kill('SIGKILL');
  running = null;
});

const BUILDS = [
  ['luajit2', 'gc64'],
  ['luajit2', 'nogc64'],
  ['luajit', 'gc64'],
  ['luajit', 'nogc64'],
] as const;

for (const [pkg, mode] of BUILDS) {
  describe(`${pkg} ${mode}`, () => {
    it('names functions the way their callers call them', async () => {
      const stacks = await profileShape(luajitBuild(pkg, mode), 'names', 'jit-on');
      const names = new Set(stacks.flatMap((s) => s.frames).filter((f) => frameKind(f) === 'lua').map(frameName));
      for (const name of ['global_fn', 'local_fn', 'M.field_fn', 'M:method_fn', 'calls_upvalue', 'up', 'spin']) {
        expect(names, `${name} in ${[...names].join(', ')}`).toContain(name);
      }
      // Definition lines by default: every spin frame says where spin is defined.
      const spinLine = lineOf('local function spin(');
      for (const s of stacks) for (const f of s.frames) if (frameName(f) === 'spin') expect(f).toMatch(new RegExp(`shapes\\.lua:${spinLine}\\)$`));
    });

    it('shows all frames of a 150-deep recursion', async () => {
      const stacks = await profileShape(luajitBuild(pkg, mode), 'deep', 'jit-off');
      const deep = stacks.filter((s) => s.frames.filter((f) => f.startsWith('recurse (')).length === 151);
      expect(total(deep) / total(stacks)).toBeGreaterThan(0.9);
      for (const s of deep) expect(s.frames[0]).not.toBe('[more Lua frames]');
    });

    it('shows current lines inside compiled traces with --lines current', async () => {
      const stacks = await profileShape(luajitBuild(pkg, mode), 'trace', 'jit-on', ['--lines', 'current']);
      const body = [lineOf('a = (a + i) % 65521'), lineOf('b = (b * 3 + a) % 65521'), lineOf('c = (c + b * 7) % 65521'), lineOf('for i = 1, n do')];
      const defLine = lineOf('local function hot_loop(');
      const leaves = stacks.filter((s) => s.frames.some((f) => f.startsWith('hot_loop (')));
      const inBody = leaves.filter((s) => body.some((l) => s.frames.at(-1)!.endsWith(`shapes.lua:${l})`)));
      expect(total(leaves) / total(stacks)).toBeGreaterThan(0.8);
      // Most samples name a line of the loop body, not the definition line.
      expect(total(inBody) / total(leaves), JSON.stringify(leaves.slice(0, 5))).toBeGreaterThan(0.8);
      expect(leaves.some((s) => s.frames.at(-1)!.endsWith(`:${defLine})`))).toBe(false);
    });

    it('shows Lua called back from C through an FFI callback above that C, and the C above its Lua caller', async () => {
      const stacks = await profileShape(luajitBuild(pkg, mode), 'callback', 'jit-on');
      const compare = `shapes.lua:${lineOf('local function compare(')})`;
      const inCallback = stacks.filter((s) => s.frames.at(-1)!.endsWith(compare));
      expect(total(inCallback) / total(stacks)).toBeGreaterThan(0.5);
      // A few walks stop early (the run reports how many and why); the
      // rest reach main and must show the order.
      const rooted = inCallback.filter((s) => s.frames[0] === '_start');
      expect(total(rooted) / total(inCallback)).toBeGreaterThan(0.9);
      for (const s of rooted) {
        const text = s.frames.join(';');
        const caller = s.frames.findIndex((f) => f.startsWith('sort_with_callback ('));
        const sort = s.frames.findIndex((f) => f.startsWith('qsort'));
        // Lua caller, then libc's qsort, then the Lua callback on top.
        expect(caller, text).toBeGreaterThanOrEqual(0);
        expect(sort, text).toBeGreaterThan(caller);
        expect(s.frames.slice(sort + 1, -1).every((f) => frameKind(f) !== 'lua'), text).toBe(true);
        expect(s.frames.slice(0, 4), text).toEqual(['_start', '__libc_start_main', '__libc_start_call_main', 'main']);
      }
    });

    it('shows a C function called through the FFI directly above its Lua caller', async () => {
      for (const jit of ['jit-on', 'jit-off'] as const) {
        const stacks = await profileShape(luajitBuild(pkg, mode), 'ffi', jit);
        const viaC = stacks.filter((s) => s.frames.some((f) => f.includes('getpid')));
        expect(total(viaC) / total(stacks), jit).toBeGreaterThan(0.3);
        // The first few samples, before the process's LuaJIT is located, have no Lua frames yet.
        const withLua = viaC.filter((s) => s.frames.some((f) => frameKind(f) === 'lua'));
        expect(total(withLua) / total(viaC), jit).toBeGreaterThan(0.95);
        for (const s of withLua) {
          const at = s.frames.findIndex((f) => f.includes('getpid'));
          const below = s.frames.slice(0, at).filter((f) => frameKind(f) === 'lua');
          expect(below.at(-1), s.frames.join(';')).toMatch(/^ffi_loop \(/);
          // Between the caller and the C function: at most the FFI's own call machinery.
          expect(s.frames.slice(s.frames.lastIndexOf(below.at(-1)!) + 1, at).every((f) => frameKind(f) !== 'lua' || f.startsWith('ffi.')), s.frames.join(';')).toBe(true);
        }
      }
    });
  });
}
