// The flame graph in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Opens a generated SVG from disk, zooms, searches, and
// reloads to check the view comes back from the URL. No root needed; if
// Chromium is missing this fails (it never skips).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderDiffFlameGraph } from '../../src/report/diff.js';
import { parseFolded } from '../../src/report/fold.js';
import { renderFlameGraph } from '../../src/report/flamegraph/svg.js';
import { repoRoot } from '../support/fixture.js';

// Debian's package; CHROMIUM_PATH points elsewhere (e.g. to check that a
// missing browser fails this test rather than skipping it).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const small = parseFolded(readFileSync(join(repoRoot, 'fixtures/report/small.folded'), 'utf8'));
const smallAfter = parseFolded(readFileSync(join(repoRoot, 'fixtures/report/small-after.folded'), 'utf8'));

let dir: string;
let context: BrowserContext;
let page: Page;
let url: string;

/** A frame group by its name (the title text before " ("). */
function frame(name: string) {
  return page.locator('#frames > g').filter({ has: page.locator('title', { hasText: new RegExp(`^${escape(name)} \\(`) }) });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function rectWidth(name: string): Promise<number> {
  const box = await frame(name).locator('rect').boundingBox();
  if (!box) throw new Error(`${name} is not rendered`);
  return box.width;
}

/** Rendered widths, within a pixel (a hovered frame's outline adds a little). */
function near(actual: number, expected: number): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThan(1);
}

async function fill(name: string): Promise<string> {
  return frame(name).locator('rect').evaluate((r) => getComputedStyle(r).fill);
}

async function search(text: string, how: 'button' | 'key'): Promise<void> {
  page.once('dialog', (d) => {
    expect(d.type()).toBe('prompt');
    void d.accept(text);
  });
  if (how === 'button') await page.locator('#search').click();
  else await page.keyboard.press('/');
  await expect.poll(() => page.url()).toContain(`search=${encodeURIComponent(text)}`);
}

it('finds Chromium (a missing browser fails this file, never skips it)', () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
});

describe('flame graph in headless Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: this test needs Debian's Chromium (apt-get install -y chromium)`);
    }
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-browser-'));
    const svg = join(dir, 'flame.svg');
    writeFileSync(svg, renderFlameGraph(small, { title: 'small' }));
    writeFileSync(join(dir, 'diff.svg'), renderDiffFlameGraph(small, smallAfter));
    url = pathToFileURL(svg).href;
    // A fresh profile directory every run (playwright passes it as --user-data-dir).
    context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 400 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => {
      throw err;
    });
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows every frame at its width, with tooltips', async () => {
    await page.goto(url);
    expect(await page.locator('#frames > g').count()).toBe(19);
    // 29 of 47 samples over 1180 px.
    near(await rectWidth('heavy (/app/work.lua:12)'), (29 / 47) * 1180);
    expect(await frame('epoll_wait').isVisible()).toBe(true);
    expect(await page.locator('#reset').isVisible()).toBe(false);
    await frame('string.format').hover();
    expect(await page.locator('#status').textContent()).toBe('string.format (9 samples, 19.15%)');
    expect(await frame('string.format').locator('title').textContent()).toBe('string.format (9 samples, 19.15%)');
  });

  it('zooms into a clicked frame', async () => {
    await frame('heavy (/app/work.lua:12)').click();
    near(await rectWidth('heavy (/app/work.lua:12)'), 1180);
    near(await rectWidth('string.format'), (9 / 29) * 1180);
    expect(await frame('epoll_wait').isVisible()).toBe(false);
    expect(await frame('[GC]').isVisible()).toBe(false);
    // Ancestors stay, full width and faded.
    near(await rectWidth('lua_resume'), 1180);
    expect(await frame('lua_resume').getAttribute('class')).toBe('f faded');
    expect(await page.locator('#reset').isVisible()).toBe(true);
    expect(new URL(page.url()).hash).toBe('#zoom=8,18');
  });

  it('searches: highlights matches and shows the matched share', async () => {
    await search('format', 'button');
    expect(await frame('string.format').getAttribute('class')).toBe('f match');
    expect(await fill('string.format')).toBe('rgb(226, 60, 226)');
    expect(await fill('heavy (/app/work.lua:12)')).not.toBe('rgb(226, 60, 226)');
    expect(await page.locator('#matched').textContent()).toBe('Matched: 19.15% (9 of 47 samples)');
    expect(await page.locator('#search').textContent()).toBe('Reset search');
    expect(new URL(page.url()).hash).toBe('#zoom=8,18&search=format');

    // Escape clears the search; "/" opens it again. Any case for lower-case text.
    await page.keyboard.press('Escape');
    expect(await page.locator('#matched').textContent()).toBe('');
    expect(await frame('string.format').getAttribute('class')).toBe('f');
    await search('heavy|lua_', 'key');
    expect(await page.locator('#matched').textContent()).toBe('Matched: 82.98% (39 of 47 samples)');
    expect(await page.locator('#frames > g.match').count()).toBe(3); // lua_resume, heavy, and the hidden ngx_http_lua_content_handler
  });

  it('restores zoom and search from the URL on reload', async () => {
    await page.reload();
    expect(new URL(page.url()).hash).toBe('#zoom=8,18&search=heavy%7Clua_');
    near(await rectWidth('heavy (/app/work.lua:12)'), 1180);
    expect(await frame('epoll_wait').isVisible()).toBe(false);
    expect(await frame('heavy (/app/work.lua:12)').getAttribute('class')).toBe('f match');
    expect(await frame('lua_resume').getAttribute('class')).toBe('f faded match');
    expect(await page.locator('#matched').textContent()).toBe('Matched: 82.98% (39 of 47 samples)');
    expect(await page.locator('#reset').isVisible()).toBe(true);
  });

  it('steps back through earlier views and resets the zoom', async () => {
    await page.goBack(); // before "/heavy|lua_": zoomed, no search
    await expect.poll(() => page.locator('#matched').textContent()).toBe('');
    expect(new URL(page.url()).hash).toBe('#zoom=8,18');
    expect(await frame('epoll_wait').isVisible()).toBe(false);

    await page.locator('#reset').click();
    expect(await frame('epoll_wait').isVisible()).toBe(true);
    near(await rectWidth('heavy (/app/work.lua:12)'), (29 / 47) * 1180);
    expect(await page.locator('#reset').isVisible()).toBe(false);
    expect(page.url()).toBe(url);
  });

  it('runs the same script in the differential flame graph', async () => {
    await page.goto(pathToFileURL(join(dir, 'diff.svg')).href);
    await frame('cache_get (/app/routes.lua:40)').click();
    near(await rectWidth('cache_get (/app/routes.lua:40)'), 1180);
    expect(await frame('epoll_wait').isVisible()).toBe(false);
    await search('cache', 'button');
    expect(await page.locator('#matched').textContent()).toBe('Matched: 12.00% (6 of 50 samples)');
  });
});
