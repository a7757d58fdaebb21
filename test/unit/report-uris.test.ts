// --label uri in the outputs: the [uri:...] frames, --max-labels, the
// summary's URI table (JSON and Markdown), --group-by uri and taking the
// frames out again for outputs without it.
import { describe, expect, it } from 'vitest';
import { groupStacks } from '../../src/report/gateway.js';
import { mergeIdentical } from '../../src/report/stack.js';
import { renderSummaryMarkdown, summarize } from '../../src/report/summary.js';
import { labelNames, OTHER_URIS, stackUri, uriCounts, uriFrame, uriOfFrame, withoutUriFrames } from '../../src/report/uris.js';

const lua = 'handler (/app/apisix/init.lua:10)';

describe('uri frames', () => {
  it('round-trips a path, made safe for folded files', () => {
    expect(uriFrame('/api/users')).toBe('[uri:/api/users]');
    expect(uriOfFrame('[uri:/api/users]')).toBe('/api/users');
    expect(uriFrame('/a;b')).toBe('[uri:/a:b]');
    expect(uriOfFrame('[phase:access]')).toBeNull();
    expect(uriOfFrame('main')).toBeNull();
  });

  it('finds a stack\'s URI first, or under a --group-by phase frame', () => {
    expect(stackUri(['[uri:/a]', 'main', lua])).toBe('/a');
    expect(stackUri(['[phase:access]', '[uri:/a]', 'main'])).toBe('/a');
    expect(stackUri(['main', '[uri:/a]'])).toBeNull();
    expect(stackUri([])).toBeNull();
  });
});

describe('labelNames (--max-labels)', () => {
  it('keeps the most sampled paths, the rest and unknown ids are [other]', () => {
    const samples = new Map([[1, 50], [2, 30], [3, 30], [4, 5], [5, 9]]);
    const paths = new Map([[1, '/a'], [2, '/c'], [3, '/b'], [4, '/a']]);
    const names = labelNames(samples, paths, 2);
    // /a has 55 over two ids; /b and /c tie at 30: /b first by name.
    expect([...names]).toEqual([[1, '/a'], [2, OTHER_URIS], [3, '/b'], [4, '/a'], [5, OTHER_URIS]]);
  });
});

describe('summary and grouping', () => {
  const stacks = mergeIdentical([
    { frames: ['[uri:/orders]', 'main', lua], count: 6 },
    { frames: ['[uri:/status]', 'main', lua], count: 3 },
    { frames: ['main', 'epoll_wait'], count: 1 },
  ]);

  it('counts each labelled sample once for its URI; JSON and Markdown', () => {
    expect([...uriCounts(stacks)]).toEqual([['/orders', { self: 6, total: 6 }], ['/status', { self: 3, total: 3 }]]);
    const s = summarize(stacks);
    expect(s.uris.map((u) => [u.name, u.total, u.totalShare])).toEqual([['/orders', 6, 0.6], ['/status', 3, 0.3]]);
    const md = renderSummaryMarkdown(s);
    expect(md).toContain('by request URI');
    expect(md).toContain('| 1 | `/orders` | 60.00% (6) |');
  });

  it('is an empty array without labels, and no Markdown table', () => {
    const plain = withoutUriFrames(stacks);
    expect(plain.some((s) => s.frames.some((f) => f.startsWith('[uri:')))).toBe(false);
    expect(plain.find((s) => s.frames.includes(lua))?.count).toBe(9);
    const s = summarize(plain);
    expect(s.uris).toEqual([]);
    expect(renderSummaryMarkdown(s)).not.toContain('by request URI');
    // The counts made before the frames were taken out still give the table.
    expect(summarize(plain, { uris: uriCounts(stacks) }).uris.map((u) => u.name)).toEqual(['/orders', '/status']);
  });

  it('--group-by uri puts the URI first, also under a phase frame; unlabelled stacks stay', () => {
    const grouped = groupStacks(
      [
        { frames: ['[phase:access]', '[uri:/a]', 'main'], count: 1 },
        { frames: ['[uri:/b]', 'main'], count: 1 },
        { frames: ['main'], count: 1 },
      ],
      'uri',
    );
    expect(grouped.map((s) => s.frames)).toEqual([['[uri:/a]', '[phase:access]', 'main'], ['[uri:/b]', 'main'], ['main']]);
  });
});
