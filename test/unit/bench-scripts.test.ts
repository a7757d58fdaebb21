// The bench scripts run only by hand (`npm run bench`, minutes long, as
// root), so nothing else would notice one that no longer parses: check
// each with `node --check`, which parses without running it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const benchDir = join(import.meta.dirname, '../../bench');
const scripts = readdirSync(benchDir).filter((f) => f.endsWith('.mjs'));

describe('bench scripts', () => {
  it('are there to check', () => {
    expect(scripts).toContain('run.mjs');
  });

  it.each(scripts)('%s parses', (file) => {
    const r = spawnSync(process.execPath, ['--check', join(benchDir, file)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
