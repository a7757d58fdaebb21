import { describe, expect, it } from 'vitest';
import { foldStacks as foldUnique, parseFolded } from '../../src/report/fold.js';
import { safeFrameName } from '../../src/report/frame.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';

// As the CLI does: stacks are merged once (mergeIdentical), then folded.
const foldStacks = (stacks: Stack[]) => foldUnique(mergeIdentical(stacks));
import type { Stack } from '../../src/report/stack.js';

describe('foldStacks', () => {
  it('merges identical stacks and sums their counts', () => {
    const text = foldStacks([
      { frames: ['main', 'a', 'b'], count: 2 },
      { frames: ['main', 'a'], count: 1 },
      { frames: ['main', 'a', 'b'], count: 3 },
    ]);
    expect(text).toBe('main;a 1\nmain;a;b 5\n');
  });

  it('sorts lines by stack text in code-unit order, whatever the input order', () => {
    const stacks: Stack[] = [
      { frames: ['main', 'zeta'], count: 1 },
      { frames: ['main', 'Zeta'], count: 1 },
      { frames: ['main', 'alpha'], count: 1 },
      { frames: ['main'], count: 1 },
    ];
    const expected = 'main 1\nmain;Zeta 1\nmain;alpha 1\nmain;zeta 1\n';
    expect(foldStacks(stacks)).toBe(expected);
    expect(foldStacks([...stacks].reverse())).toBe(expected);
  });

  it('ends with a newline, and gives an empty string for no stacks', () => {
    expect(foldStacks([{ frames: ['a'], count: 1 }]).endsWith('\n')).toBe(true);
    expect(foldStacks([])).toBe('');
  });

  it('makes names safe where they are made, and refuses a name that was not', () => {
    expect(safeFrameName('a;b')).toBe('a:b');
    expect(safeFrameName('x\ny\r\nz\rw')).toBe('x y z w');
    const text = foldStacks([{ frames: ['root', safeFrameName('f;g'), safeFrameName('line\nbreak')], count: 4 }]);
    expect(text).toBe('root;f:g;line break 4\n');
    // A `;` would split the frame for every reader of the file.
    expect(() => foldStacks([{ frames: ['root', 'f;g'], count: 1 }])).toThrow(/not made safe/);
    expect(() => foldStacks([{ frames: ['line\nbreak'], count: 1 }])).toThrow(/not made safe/);
  });

  it('keeps Lua frame text with spaces and parentheses intact', () => {
    const text = foldStacks([{ frames: ['lua_resume', 'heavy (/app/work.lua:12)'], count: 3 }]);
    expect(text).toBe('lua_resume;heavy (/app/work.lua:12) 3\n');
  });

  it('leaves out zero counts and empty stacks, rejects bad counts', () => {
    expect(
      foldStacks([
        { frames: ['a'], count: 0 },
        { frames: [], count: 5 },
      ]),
    ).toBe('');
    expect(() => foldStacks([{ frames: ['a'], count: -1 }])).toThrow(RangeError);
    expect(() => foldStacks([{ frames: ['a'], count: 1.5 }])).toThrow(RangeError);
    expect(() => foldStacks([{ frames: ['a'], count: Number.NaN }])).toThrow(RangeError);
  });
});

describe('parseFolded', () => {
  it('parses frames and counts', () => {
    expect(parseFolded('main;a;b 5\nmain 1\n')).toEqual([
      { frames: ['main', 'a', 'b'], count: 5 },
      { frames: ['main'], count: 1 },
    ]);
  });

  it('tolerates CRLF, blank lines, a BOM, surrounding whitespace and tabs', () => {
    const text = '\uFEFFa;b 2\r\n\r\n   \n  c;d\t3  \r\nlast 1';
    expect(parseFolded(text)).toEqual([
      { frames: ['a', 'b'], count: 2 },
      { frames: ['c', 'd'], count: 3 },
      { frames: ['last'], count: 1 },
    ]);
  });

  it('reads stackcollapse-perf style lines (process name and frames with spaces)', () => {
    const line =
      'nginx: worker process;ngx_epoll_process_events;[unknown];operator new(unsigned long);do_epoll_wait_[k] 12';
    expect(parseFolded(line)).toEqual([
      {
        frames: [
          'nginx: worker process',
          'ngx_epoll_process_events',
          '[unknown]',
          'operator new(unsigned long)',
          'do_epoll_wait_[k]',
        ],
        count: 12,
      },
    ]);
  });

  it('reads stapxx lj-lua-stacks style lines', () => {
    const line = 'C:ngx_http_lua_content_handler;@/app/work.lua:12;builtin#29;=content_by_lua(nginx.conf:40):3 7';
    expect(parseFolded(line)).toEqual([
      {
        frames: [
          'C:ngx_http_lua_content_handler',
          '@/app/work.lua:12',
          'builtin#29',
          '=content_by_lua(nginx.conf:40):3',
        ],
        count: 7,
      },
    ]);
  });

  it('takes the last number as the count when a frame ends in digits', () => {
    expect(parseFolded('a;retry 3 9')).toEqual([{ frames: ['a', 'retry 3'], count: 9 }]);
  });

  it('reports the line number of a line without a count', () => {
    expect(() => parseFolded('a;b 1\n\nno count here\n')).toThrow(/^line 3: expected "frames count"/);
  });

  it('rejects fractional counts, bare counts and missing separators', () => {
    expect(() => parseFolded('a 1.5')).toThrow(/line 1: expected "frames count"/);
    expect(() => parseFolded('x 1\n42')).toThrow(/line 2: expected "frames count"/);
    expect(() => parseFolded('a;b;c')).toThrow(/line 1: expected "frames count"/);
    expect(() => parseFolded('a;b 99999999999999999999')).toThrow(/line 1: expected "frames count"/);
  });

  it('accepts empty input', () => {
    expect(parseFolded('')).toEqual([]);
    expect(parseFolded('\r\n\n')).toEqual([]);
  });
});

describe('fold round trip', () => {
  const stacks: Stack[] = [
    { frames: ['nginx: worker process', 'lua_resume', 'heavy (/app/work.lua:12)'], count: 20 },
    { frames: ['nginx: worker process', 'lua_resume', 'heavy (/app/work.lua:12)', 'string.format'], count: 9 },
    { frames: ['nginx: worker process', '[GC]'], count: 3 },
    { frames: ['nginx: worker process', 'lua_resume', 'heavy (/app/work.lua:12)'], count: 1 },
    { frames: ['nginx: worker process', 'do_epoll_wait_[k]'], count: 7 },
  ];

  it('parse(fold(stacks)) gives the merged stacks', () => {
    const parsed = parseFolded(foldStacks(stacks));
    expect(parsed).toEqual([
      { frames: ['nginx: worker process', '[GC]'], count: 3 },
      { frames: ['nginx: worker process', 'do_epoll_wait_[k]'], count: 7 },
      { frames: ['nginx: worker process', 'lua_resume', 'heavy (/app/work.lua:12)'], count: 21 },
      { frames: ['nginx: worker process', 'lua_resume', 'heavy (/app/work.lua:12)', 'string.format'], count: 9 },
    ]);
  });

  it('fold(parse(text)) reproduces canonical folded text byte for byte', () => {
    const text = foldStacks(stacks);
    expect(foldStacks(parseFolded(text))).toBe(text);
    expect(foldStacks(parseFolded(text.replace(/\n/g, '\r\n')))).toBe(text);
  });
});
