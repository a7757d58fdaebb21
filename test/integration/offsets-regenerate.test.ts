// The committed offset tables are what the generator produces: regenerate
// one from Debian's source package and compare.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { repoRoot, requireRoot } from '../support/fixture.js';

it('regenerates luajit2 gc64 exactly as committed', async () => {
  requireRoot();
  const out = mkdtempSync(join(tmpdir(), 'apisix-profile-offsets-'));
  try {
    await promisify(execFile)('bash', [join(repoRoot, 'luajit-offsets/generate.sh'), 'luajit2', 'gc64'], { env: { ...process.env, OUT_DIR: out } });
    const name = 'luajit2-2.1-20230119-gc64.json';
    expect(readFileSync(join(out, name), 'utf8')).toBe(readFileSync(join(repoRoot, 'luajit-offsets/tables', name), 'utf8'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
