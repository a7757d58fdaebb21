import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearElfCache, loadElfObject, symbolizeAddress } from '../../src/elf/elf-cache.js';
import { findSymbol, lookup } from '../../src/elf/elf-symbols.js';
import { type Mapping, findMapping, parseProcMaps, readProcMaps } from '../../src/target/proc-maps.js';

const FIXTURES = new URL('../../fixtures/', import.meta.url).pathname;

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

let dir: string;
let lib: string;
let prog: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'elf-cache-'));
  lib = join(dir, 'libsymlib.so');
  prog = join(dir, 'symprog');
  run('gcc', ['-O1', '-fPIC', '-shared', '-o', lib, join(FIXTURES, 'elf/symlib.c')]);
  run('gcc', ['-O1', '-fPIE', '-pie', '-o', prog, join(FIXTURES, 'elf/symprog.c'), '-L', dir, '-lsymlib', `-Wl,-rpath,${dir}`]);
  clearElfCache();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('symbolizeAddress on a live process', () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('names functions of the program and of its shared library', async () => {
    const c = spawn(prog, [], { stdio: 'pipe' });
    child = c;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      c.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      c.on('error', reject);
      c.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const addrs = new Map(
      out
        .split('\n')
        .filter((l) => l.includes(' 0x'))
        .map((l) => {
          const [name, a] = l.split(' ');
          return [name, BigInt(a)] as const;
        }),
    );
    expect(addrs.size).toBe(3);
    const maps = readProcMaps(c.pid!);
    for (const [name, addr] of addrs) {
      for (const delta of [0n, 1n, 5n]) {
        const m = findMapping(maps, addr + delta)!;
        expect(m.perms).toBe('r-xp');
        const obj = loadElfObject(m.path);
        expect(obj).not.toBeNull();
        const aliases = name === 'symlib_exported' ? [name, 'symlib_alias'] : [name];
        expect(aliases).toContain(symbolizeAddress(obj, m, addr + delta));
      }
    }
    c.stdin.end('\n');
  });
});

describe('loadElfObject', () => {
  it('caches by path and (dev, inode, mtime)', () => {
    const copy = join(dir, 'libcopy.so');
    copyFileSync(lib, copy);
    const a = loadElfObject(copy)!;
    expect(a).not.toBeNull();
    expect(loadElfObject(copy)).toBe(a);
    utimesSync(copy, new Date(), new Date(Date.now() + 5000));
    const b = loadElfObject(copy)!;
    expect(b).not.toBe(a);
    expect(b.info.buildId).toBe(a.info.buildId);
    expect(loadElfObject(copy)).toBe(b);
    clearElfCache();
    expect(loadElfObject(copy)).not.toBe(b);
  });

  it('returns null for missing, non-regular and non-ELF files', () => {
    expect(loadElfObject(join(dir, 'nope.so'))).toBeNull();
    expect(loadElfObject(dir)).toBeNull();
    const txt = join(dir, 'notelf.so');
    writeFileSync(txt, 'not an ELF file at all, just text'.repeat(4));
    expect(loadElfObject(txt)).toBeNull();
  });

  it('computes usesFramePointers lazily', () => {
    const obj = loadElfObject('/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2')!;
    expect(obj.usesFramePointers).toBe(false);
    expect(obj.usesFramePointers).toBe(false);
  });

  it('reads symbols from a separate debug file found by build-id', () => {
    const stripped = join(dir, 'symprog-stripped');
    run('strip', ['--strip-all', '-o', stripped, prog]);
    const noDebug = loadElfObject(stripped, { debugRoot: '' })!;
    expect(findSymbol(noDebug.symbols, 'symprog_static')).toBeUndefined();
    clearElfCache();

    const root = join(dir, 'debug');
    const id = noDebug.info.buildId!;
    mkdirSync(join(root, '.build-id', id.slice(0, 2)), { recursive: true });
    run('objcopy', ['--only-keep-debug', prog, join(root, '.build-id', id.slice(0, 2), id.slice(2) + '.debug')]);
    const withDebug = loadElfObject(stripped, { debugRoot: root })!;
    expect(withDebug.symbolSources).toEqual([join(root, '.build-id', id.slice(0, 2), id.slice(2) + '.debug')]);
    const full = loadElfObject(prog, { debugRoot: '' })!;
    expect(findSymbol(withDebug.symbols, 'symprog_static')!.vaddr).toBe(findSymbol(full.symbols, 'symprog_static')!.vaddr);
    expect(findSymbol(withDebug.symbols, 'symprog_static')!.fileOffset).toBe(findSymbol(full.symbols, 'symprog_static')!.fileOffset);
    clearElfCache();
  });

  it('reads symbols from .gnu_debugdata (MiniDebugInfo)', () => {
    // The usual MiniDebugInfo recipe: keep the static function symbols that
    // .dynsym lacks in an xz-compressed ELF inside the stripped file.
    const w = join(dir, 'mini');
    mkdirSync(w, { recursive: true });
    const nmNames = (args: string[]) =>
      run('nm', [...args, '--format=posix', '--defined-only', prog])
        .split('\n')
        .filter((l) => /^\S+ [tT] /.test(l))
        .map((l) => l.split(' ')[0]);
    const dyn = new Set(nmNames(['-D']));
    writeFileSync(join(w, 'keep'), nmNames([]).filter((n) => !dyn.has(n)).join('\n') + '\n');
    run('objcopy', ['--only-keep-debug', prog, join(w, 'mini.debug')]);
    run('objcopy', ['-S', '--remove-section', '.comment', `--keep-symbols=${join(w, 'keep')}`, join(w, 'mini.debug')]);
    run('xz', ['-f', join(w, 'mini.debug')]);
    const target = join(w, 'symprog-mini');
    run('strip', ['--strip-all', '-R', '.comment', '-o', target, prog]);
    run('objcopy', ['--add-section', `.gnu_debugdata=${join(w, 'mini.debug.xz')}`, target]);

    const obj = loadElfObject(target, { debugRoot: '' })!;
    expect(obj.info.sectionsByName.has('.gnu_debugdata')).toBe(true);
    expect(obj.info.sectionsByName.has('.symtab')).toBe(false);
    expect(obj.symbolSources).toEqual(['.gnu_debugdata']);
    const full = loadElfObject(prog, { debugRoot: '' })!;
    expect(findSymbol(obj.symbols, 'symprog_static')!.vaddr).toBe(findSymbol(full.symbols, 'symprog_static')!.vaddr);
    const off = loadElfObject(target, { debugRoot: '', useGnuDebugdata: false });
    expect(off).toBe(obj); // cached; options do not invalidate
    clearElfCache();
    expect(findSymbol(loadElfObject(target, { debugRoot: '', useGnuDebugdata: false })!.symbols, 'symprog_static')).toBeUndefined();
    clearElfCache();
  });
});

describe('symbolizeAddress fallbacks', () => {
  const maps = parseProcMaps(readFileSync(join(FIXTURES, 'maps/nginx-worker.maps'), 'utf8'));
  const ljText = maps.find((m) => m.path.endsWith('libluajit-5.1.so.2.1.0') && m.perms === 'r-xp')!;

  it('symbolizes a recorded worker mapping against the installed libluajit', () => {
    const obj = loadElfObject('/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2')!;
    const f = findSymbol(obj.symbols, 'lua_resume')!;
    const addr = ljText.start + (f.fileOffset! - ljText.offset);
    expect(findMapping(maps, addr)).toBe(ljText);
    expect(symbolizeAddress(obj, ljText, addr)).toBe('lua_resume');
    expect(symbolizeAddress(obj, ljText, addr + 7n)).toBe('lua_resume');
  });

  it('uses [module+0xvaddr] when no symbol covers the address', () => {
    const obj = loadElfObject('/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2')!;
    // The LuaJIT VM (lj_vm_*) has no exported symbol; .text starts at 0x9cc0 in this build.
    const vmVaddr = obj.info.sectionsByName.get('.text')!.addr + 0x180n;
    expect(lookup(obj.symbols, vmVaddr)).toBeUndefined();
    const addr = ljText.start + (vmVaddr - ljText.offset);
    expect(symbolizeAddress(obj, ljText, addr)).toBe(`[libluajit-5.1.so.2.1.0+0x${vmVaddr.toString(16)}]`);
  });

  it('uses the file offset without an ELF object, and handles pseudo and anonymous mappings', () => {
    expect(symbolizeAddress(null, ljText, ljText.start + 0x10n)).toBe('[libluajit-5.1.so.2.1.0+0x9010]');
    const vdso = maps.find((m) => m.path === '[vdso]')!;
    expect(symbolizeAddress(null, vdso, vdso.start + 0x123n)).toBe('[vdso+0x123]');
    const anon: Mapping = { ...ljText, path: '', inode: 0, dev: '00:00' };
    expect(symbolizeAddress(null, anon, anon.start)).toBe('[unknown]');
  });
});
