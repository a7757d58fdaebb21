// The committed offset tables are what the generator produces: regenerate
// some from Debian's source package and from release tarballs and compare
// byte for byte (generate.sh reuses cached builds, so this takes seconds
// after scripts/build-luajit-variants.sh).
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { repoRoot, requireRoot } from '../support/fixture.js';

// The same folder scripts/build-luajit-variants.sh builds from.
const luajitSrc = execFileSync('bash', [join(repoRoot, 'scripts', 'luajit-src-dir.sh')], { encoding: 'utf8' }).trim();

const cases: { table: string; args: string[] }[] = [
  { table: 'luajit2-2.1-20230119-gc64', args: ['luajit2', 'gc64'] },
  { table: 'luajit2-2.1-20201027-nogc64', args: ['--source', join(luajitSrc, 'luajit2-2.1-20201027.tar.gz'), 'nogc64'] },
  { table: 'luajit-2.1-20260819-gc64', args: ['--source', join(luajitSrc, 'luajit-2.1-20260819.tar.gz'), 'gc64'] },
];

for (const { table, args } of cases) {
  it(`regenerates ${table} exactly as committed`, async () => {
    requireRoot();
    const out = mkdtempSync(join(tmpdir(), 'apisix-profile-offsets-'));
    try {
      const { stderr } = await promisify(execFile)('bash', [join(repoRoot, 'luajit-offsets/generate.sh'), ...args], { env: { ...process.env, OUT_DIR: out } });
      if (args[0] === '--source') expect(stderr).toMatch(/sha256 [0-9a-f]{64} matches .*README\.md/);
      const name = `${table}.json`;
      expect(readFileSync(join(out, name), 'utf8')).toBe(readFileSync(join(repoRoot, 'luajit-offsets/tables', name), 'utf8'));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
}

/** Runs generate.sh; resolves with its exit code and stderr instead of throwing. */
async function generate(args: string[], outDir: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await promisify(execFile)('bash', [join(repoRoot, 'luajit-offsets/generate.sh'), ...args], { env: { ...process.env, OUT_DIR: outDir } });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

it('checks a tarball against the README next to it: a listed one with another sha256 is refused, an unlisted one is used and its sha256 recorded', async () => {
  requireRoot();
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-tarball-'));
  const out = join(dir, 'out');
  const name = 'luajit2-2.1-20240314';
  const committed = JSON.parse(readFileSync(join(repoRoot, 'luajit-offsets/tables', `${name}-gc64.json`), 'utf8'));
  try {
    copyFileSync(join(luajitSrc, `${name}.tar.gz`), join(dir, `${name}.tar.gz`));
    expect((await generate(['--source', join(dir, `${name}.tar.gz`)], out)).code).toBe(2);

    writeFileSync(join(dir, 'README.md'), `| file | repository | ref | commit | sha256 |\n|---|---|---|---|---|\n| ${name}.tar.gz | openresty/luajit2 | tag v2.1-20240314 | ${'1'.repeat(40)} | ${'0'.repeat(64)} |\n`);
    const refused = await generate(['--source', join(dir, `${name}.tar.gz`), 'gc64'], out);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`${name}.tar.gz: sha256 [0-9a-f]{64} differs from 0{64} listed in`));
    expect(existsSync(join(out, `${name}-gc64.json`))).toBe(false);

    rmSync(join(dir, 'README.md'));
    const unlisted = await generate(['--source', join(dir, `${name}.tar.gz`), 'gc64'], out);
    expect(unlisted.code, unlisted.stderr).toBe(0);
    const sha = /sha256 ([0-9a-f]{64})\)$/.exec(committed.source)![1];
    expect(unlisted.stderr).toContain(`${name}.tar.gz: not listed in ${dir}/README.md; using it as is, sha256 ${sha}`);
    const table = JSON.parse(readFileSync(join(out, `${name}-gc64.json`), 'utf8'));
    expect(table.source).toBe(`${name}.tar.gz (sha256 ${sha}, not listed)`);
    expect({ ...table, source: committed.source }).toEqual(committed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
