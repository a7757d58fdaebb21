// Golden files: an output compared byte for byte with a file under
// fixtures/report/. BLESS=1 rewrites the file instead, after an intended
// change; a missing file fails with that hint.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from './fixture.js';

export function expectGolden(name: string, actual: string): void {
  const path = join(repoRoot, 'fixtures', 'report', name);
  if (process.env.BLESS === '1') {
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`missing ${path}; run with BLESS=1 to create it`);
  }
  expect(actual).toBe(expected);
}
