#!/usr/bin/env node
// Screenshot of a flame graph SVG in headless Chromium (Debian's package,
// driven by playwright-core), as in docs/flamegraph.png:
//   node scripts/flamegraph-screenshot.mjs flame.svg docs/flamegraph.png [frame to hover]
// The README's picture comes from `bash scripts/demo.sh` run in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [svg, png, hover] = process.argv.slice(2);
if (!svg || !png) {
  console.error('usage: node scripts/flamegraph-screenshot.mjs <in.svg> <out.png> [frame name to hover]');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'flamegraph-screenshot-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1200, height: 300 },
  deviceScaleFactor: 1,
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(pathToFileURL(resolve(svg)).href);
  const size = await page.evaluate(() => ({
    width: Math.ceil(Number(document.documentElement.getAttribute('width'))),
    height: Math.ceil(Number(document.documentElement.getAttribute('height'))),
  }));
  await page.setViewportSize(size);
  if (hover) {
    await page
      .locator('#frames > g')
      .filter({ has: page.locator('title', { hasText: hover }) })
      .first()
      .hover();
  }
  await page.screenshot({ path: png, clip: { x: 0, y: 0, ...size } });
  console.log(`wrote ${png} (${size.width}x${size.height})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
