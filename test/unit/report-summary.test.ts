import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import type { Stack } from '../../src/report/stack.js';
import {
  renderSummaryJson,
  renderSummaryMarkdown,
  summarize,
  type SummaryExtra,
} from '../../src/report/summary.js';
import { expectGolden } from '../support/golden.js';

const small = parseFolded(readFileSync(new URL('../../fixtures/report/small.folded', import.meta.url), 'utf8'));

const extra: SummaryExtra = {
  title: 'small',
  frequencyHz: 99,
  durationSec: 30,
  perPid: [
    { pid: 11, samples: 20 },
    { pid: 12, samples: 27, containerPid: 7 },
  ],
  vmStates: { interpreted: 10, compiled: 20, c: 9, gc: 3, jit: 2 },
  lost: 2,
  nativeCutShort: 1,
  counters: { samplesWithoutG: 0, luaBadReads: 1 },
};

describe('summarize', () => {
  const s = summarize(small, extra);

  it('counts samples, workers and diagnostics', () => {
    expect(s.title).toBe('small');
    expect(s.totalSamples).toBe(47);
    expect(s.frequencyHz).toBe(99);
    expect(s.durationSec).toBe(30);
    expect(s.workers).toEqual([
      { pid: 12, samples: 27, containerPid: 7, share: 27 / 47 },
      { pid: 11, samples: 20, share: 20 / 47 },
    ]);
    expect(s.lost).toBe(2);
    expect(s.nativeCutShort).toBe(1);
    expect(Object.keys(s.counters)).toEqual(['luaBadReads', 'samplesWithoutG']);
  });

  it('ranks functions by self samples (leaf frames)', () => {
    expect(s.topSelf.map((f) => [f.name, f.self, f.total])).toEqual([
      ['heavy (/app/work.lua:12)', 20, 29],
      ['string.format', 9, 9],
      ['do_epoll_wait_[k]', 7, 7],
      [`(/app/<tmpl> "a" & 'b'.lua:3)`, 5, 5],
      ['[GC]', 3, 3],
      ['[JIT compiler]', 2, 2],
      ['[unknown]', 1, 1],
    ]);
    expect(s.topSelf[0].selfShare).toBe(20 / 47);
    expect(s.topSelf[0].totalShare).toBe(29 / 47);
  });

  it('ranks functions by total samples, top 15, ties by name', () => {
    expect(s.topTotal.map((f) => [f.name, f.total])).toEqual([
      ['nginx: worker process', 47],
      ['ngx_worker_process_cycle', 47],
      ['ngx_process_events_and_timers', 46],
      ['lua_resume', 39],
      ['ngx_http_lua_content_handler', 39],
      ['content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)', 37],
      ['handler (/app/routes.lua:10)', 34],
      ['heavy (/app/work.lua:12)', 29],
      ['string.format', 9],
      ['do_epoll_wait_[k]', 7],
      ['entry_SYSCALL_64_after_hwframe_[k]', 7],
      ['epoll_wait', 7],
      ['ngx_epoll_process_events', 7],
      [`(/app/<tmpl> "a" & 'b'.lua:3)`, 5],
      ['[GC]', 3],
    ]);
    expect(summarize(small, { top: 2 }).topTotal.map((f) => f.name)).toEqual([
      'nginx: worker process',
      'ngx_worker_process_cycle',
    ]);
  });

  it('counts VM pseudo-frames anywhere on the stack, and passes VM states through', () => {
    expect(s.vmFrames).toEqual({ gc: 3, jit: 2, exit: 0 });
    const deep: Stack[] = [
      { frames: ['main', '[GC]', 'memset', 'clear_page_[k]'], count: 4 },
      { frames: ['main', '[trace exit]'], count: 1 },
    ];
    expect(summarize(deep).vmFrames).toEqual({ gc: 4, jit: 0, exit: 1 });
    expect(s.vmStates).toEqual({ interpreted: 10, compiled: 20, c: 9, gc: 3, jit: 2, exit: 0 });
    expect(summarize(deep).vmStates).toBeUndefined();
  });

  it('counts a recursive function once per stack for total, and merges repeated stacks', () => {
    const rec: Stack[] = [
      { frames: ['main', 'f', 'f', 'f'], count: 2 },
      { frames: ['main', 'f', 'g'], count: 1 },
      { frames: ['main', 'f', 'g'], count: 1 },
      { frames: [], count: 1 },
      { frames: ['unused'], count: 0 },
    ];
    const r = summarize(rec);
    expect(r.totalSamples).toBe(5);
    expect(r.topTotal.map((f) => [f.name, f.self, f.total])).toEqual([
      ['f', 2, 4],
      ['main', 0, 4],
      ['g', 2, 2],
    ]);
    expect(r.topSelf.map((f) => f.name)).toEqual(['f', 'g']);
    expect(r.workers).toEqual([]);
    expect(r).toMatchObject({ title: 'apisix-profile', counters: {} });
    // Not counted is not zero: a folded file does not say what was lost.
    expect(r).not.toHaveProperty('lost');
    expect(r).not.toHaveProperty('nativeCutShort');
    expect(summarize(rec, { lost: 0, nativeCutShort: 0 })).toMatchObject({ lost: 0, nativeCutShort: 0 });
  });

  it('is deterministic whatever the input order', () => {
    const again = summarize([...small].reverse(), { ...extra, perPid: [...extra.perPid!].reverse() });
    expect(renderSummaryJson(again)).toBe(renderSummaryJson(s));
  });

  it('validates counts', () => {
    expect(() => summarize([{ frames: ['a'], count: -1 }])).toThrow(RangeError);
    expect(() => summarize(small, { lost: 1.5 })).toThrow(RangeError);
    expect(() => summarize(small, { perPid: [{ pid: 1, samples: -3 }] })).toThrow(RangeError);
    expect(() => summarize(small, { vmStates: { gc: Number.NaN } })).toThrow(RangeError);
    expect(() => summarize(small, { counters: { x: -1 } })).toThrow(RangeError);
  });
});

describe('renderSummaryJson', () => {
  it('is pretty JSON in display order that parses back', () => {
    const s = summarize(small, extra);
    const text = renderSummaryJson(s);
    expect(text.endsWith('}\n')).toBe(true);
    expect(JSON.parse(text)).toEqual(s);
    expect(Object.keys(JSON.parse(text))).toEqual([
      'title',
      'totalSamples',
      'frequencyHz',
      'durationSec',
      'workers',
      'plugins',
      'phases',
      'uris',
      'topSelf',
      'topTotal',
      'vmFrames',
      'vmStates',
      'lost',
      'nativeCutShort',
      'counters',
    ]);
  });
});

describe('renderSummaryMarkdown', () => {
  it('has a headline and compact tables', () => {
    const md = renderSummaryMarkdown(summarize(small, extra));
    const lines = md.split('\n');
    expect(lines[0]).toBe('### small');
    expect(lines[2]).toBe(
      '**47 samples** at 99 Hz over 30 s · 2 workers · lost: 2 (4.08%) · native stacks cut short: 1 (2.13%)' +
        ' · luaBadReads: 1 · samplesWithoutG: 0',
    );
    expect(md).toContain('| 12 (7 in container) | 27 | 57.45% |\n| 11 | 20 | 42.55% |\n');
    expect(md).toContain('| `[GC]` on stack | 3 | 6.38% |');
    expect(md).toContain('| compiled Lua (JIT traces) | 20 | 45.45% |');
    expect(md).toContain('| 1 | `heavy (/app/work.lua:12)` | 42.55% (20) | 61.70% (29) |');
    expect(md).toContain('| 15 | `[GC]` | 6.38% (3) | 6.38% (3) |');
    expect(md.endsWith('|\n')).toBe(true);
    // Every table row has the same number of cells as its header.
    let cells = 0;
    for (const line of lines) {
      if (!line.startsWith('|')) {
        cells = 0;
        continue;
      }
      const n = line.replace(/\\\|/g, '').split('|').length;
      if (cells === 0) cells = n;
      expect(n).toBe(cells);
    }
  });

  it('escapes names for table cells and the title', () => {
    const md = renderSummaryMarkdown(
      summarize([{ frames: ['main', 'a|b', 'x `y` z'], count: 1 }], { title: 'CI *run* <#1>' }),
    );
    expect(md.split('\n')[0]).toBe('### CI \\*run\\* \\<\\#1\\>');
    expect(md).toContain('| 1 | ``x `y` z`` | 100.00% (1) | 100.00% (1) |');
    expect(md).toContain('| `a\\|b` |');
  });

  it('copes with no samples', () => {
    const md = renderSummaryMarkdown(summarize([]));
    expect(md.split('\n')[2]).toBe('**0 samples**');
    expect(renderSummaryMarkdown(summarize([], { lost: 0, nativeCutShort: 0 }))).toContain(
      '**0 samples** · lost: 0 (0.00%) · native stacks cut short: 0 (0.00%)',
    );
    expect(md).toContain('**Top functions by self samples**\n\nNo samples.');
    expect(md).not.toContain('Worker pid');
    expect(md).not.toContain('NaN');
  });

  it('matches fixtures/report/small.summary.md (BLESS=1 rewrites it)', () => {
    expectGolden('small.summary.md', renderSummaryMarkdown(summarize(small, extra)));
  });
});
