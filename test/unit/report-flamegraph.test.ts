import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { FLAMEGRAPH_SCRIPT } from '../../src/report/flamegraph/assets.js';
import { frameColor, hashName } from '../../src/report/flamegraph/color.js';
import { frameKind } from '../../src/report/frame.js';
import { layoutFrames } from '../../src/report/flamegraph/layout.js';
import { mergeStacks, type FrameNode } from '../../src/report/flamegraph/merge.js';
import { escapeXml, fitLabel, renderFlameGraph } from '../../src/report/flamegraph/svg.js';
import type { Stack } from '../../src/report/stack.js';
import { expectGolden } from '../support/golden.js';

// ---------------------------------------------------------------------------
// A minimal XML well-formedness checker that also builds a tiny tree, so tests
// can assert on structure and on decoded text. Handles the XML declaration,
// comments, CDATA, attributes in either quote style and the predefined and
// numeric entities; anything else is an error.

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: (XmlElement | string)[];
}

function decodeEntities(text: string, where: number): string {
  return text.replace(/&([^;]*);?/g, (whole, body: string) => {
    if (!whole.endsWith(';')) throw new Error(`bare & near offset ${where}`);
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (body in named) return named[body];
    const num = /^#(?:x([0-9a-fA-F]+)|([0-9]+))$/.exec(body);
    if (num) return String.fromCodePoint(num[1] ? parseInt(num[1], 16) : Number(num[2]));
    throw new Error(`unknown entity &${body}; near offset ${where}`);
  });
}

function parseXml(xml: string): XmlElement {
  const NAME = /[A-Za-z_:][-\w.:]*/y;
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at offset ${i}`);
  };
  const skipTo = (end: string): string => {
    const j = xml.indexOf(end, i);
    if (j < 0) fail(`unterminated, expected ${end}`);
    const body = xml.slice(i, j);
    i = j + end.length;
    return body;
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(xml);
    if (!m) fail('expected a name');
    i += m![0].length;
    return m![0];
  };
  const ws = (): void => {
    while (i < xml.length && /\s/.test(xml[i])) i++;
  };
  if (xml.startsWith('<?xml')) skipTo('?>');
  while (i < xml.length) {
    if (xml.startsWith('<!--', i)) {
      i += 4;
      skipTo('-->');
    } else if (xml.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) fail('CDATA outside the root element');
      i += 9;
      stack[stack.length - 1].children.push(skipTo(']]>'));
    } else if (xml.startsWith('</', i)) {
      i += 2;
      const n = name();
      ws();
      if (xml[i] !== '>') fail('expected >');
      i++;
      const open = stack.pop();
      if (!open || open.name !== n) fail(`</${n}> does not close <${open?.name}>`);
    } else if (xml[i] === '<') {
      i++;
      if (root && stack.length === 0) fail('a second root element');
      const el: XmlElement = { name: name(), attrs: {}, children: [] };
      for (;;) {
        const before = i;
        ws();
        if (xml.startsWith('/>', i)) {
          i += 2;
          break;
        }
        if (xml[i] === '>') {
          i++;
          stack.push(el);
          break;
        }
        if (i === before) fail('expected whitespace before an attribute');
        const a = name();
        ws();
        if (xml[i] !== '=') fail('expected =');
        i++;
        ws();
        const q = xml[i];
        if (q !== '"' && q !== "'") fail('expected a quoted value');
        i++;
        const raw = skipTo(q);
        if (raw.includes('<')) fail('< in an attribute value');
        if (a in el.attrs) fail(`duplicate attribute ${a}`);
        el.attrs[a] = decodeEntities(raw, i);
      }
      if (stack.length > 0 && stack[stack.length - 1] !== el) {
        stack[stack.length - 1].children.push(el);
      } else if (stack.length > 1) {
        stack[stack.length - 2].children.push(el);
      }
      if (!root) root = el;
    } else {
      const j = xml.indexOf('<', i);
      const text = xml.slice(i, j < 0 ? xml.length : j);
      if (stack.length === 0) {
        if (text.trim() !== '') fail('text outside the root element');
      } else {
        stack[stack.length - 1].children.push(decodeEntities(text, i));
      }
      i += text.length;
    }
  }
  if (stack.length > 0) fail(`<${stack[stack.length - 1].name}> is never closed`);
  if (!root) fail('no root element');
  return root!;
}

function textOf(el: XmlElement): string {
  return el.children.map((c) => (typeof c === 'string' ? c : textOf(c))).join('');
}

function findAll(el: XmlElement, pred: (e: XmlElement) => boolean, out: XmlElement[] = []): XmlElement[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) if (typeof c !== 'string') findAll(c, pred, out);
  return out;
}

function child(el: XmlElement, name: string): XmlElement {
  const found = el.children.find((c): c is XmlElement => typeof c !== 'string' && c.name === name);
  if (!found) throw new Error(`<${el.name}> has no <${name}>`);
  return found;
}

const frameGroups = (svg: XmlElement): XmlElement[] => findAll(svg, (e) => e.name === 'g' && e.attrs.class === 'f');

describe('xml checker (self-test)', () => {
  it('accepts well-formed and rejects malformed documents', () => {
    expect(parseXml('<a x="1"><b/>t &amp; &#x3c;<![CDATA[<&]]></a>').children).toHaveLength(3);
    expect(() => parseXml('<a><b></a>')).toThrow();
    expect(() => parseXml('<a>x & y</a>')).toThrow();
    expect(() => parseXml('<a x="1" x="2"/>')).toThrow();
    expect(() => parseXml('<a>')).toThrow();
    expect(() => parseXml('<a/><b/>')).toThrow();
    expect(() => parseXml('<a x="<"/>')).toThrow();
  });
});

// ---------------------------------------------------------------------------

function find(node: FrameNode, ...path: string[]): FrameNode {
  let n = node;
  for (const name of path) {
    const c = n.children.find((x) => x.name === name);
    if (!c) throw new Error(`no child ${name} under ${n.name}`);
    n = c;
  }
  return n;
}

const sample: Stack[] = [
  { frames: ['main', 'b', 'x'], count: 3 },
  { frames: ['main', 'a'], count: 2 },
  { frames: ['main', 'b'], count: 1 },
  { frames: ['main', 'b', 'x'], count: 4 },
  { frames: ['other'], count: 10 },
];

describe('mergeStacks', () => {
  it('computes self and total for every node', () => {
    const root = mergeStacks(sample);
    expect(root.name).toBe('all');
    expect(root.total).toBe(20);
    expect(root.self).toBe(0);
    expect(find(root, 'main')).toMatchObject({ total: 10, self: 0 });
    expect(find(root, 'main', 'b')).toMatchObject({ total: 8, self: 1 });
    expect(find(root, 'main', 'b', 'x')).toMatchObject({ total: 7, self: 7, children: [] });
    expect(find(root, 'main', 'a')).toMatchObject({ total: 2, self: 2 });
    expect(find(root, 'other')).toMatchObject({ total: 10, self: 10 });
  });

  it('keeps total = self + sum of children totals everywhere', () => {
    const check = (n: FrameNode): void => {
      expect(n.total).toBe(n.self + n.children.reduce((s, c) => s + c.total, 0));
      n.children.forEach(check);
    };
    check(mergeStacks(sample));
  });

  it('sorts children by name, independent of input order', () => {
    const root = mergeStacks(sample);
    expect(root.children.map((c) => c.name)).toEqual(['main', 'other']);
    expect(find(root, 'main').children.map((c) => c.name)).toEqual(['a', 'b']);
    expect(mergeStacks([...sample].reverse())).toEqual(root);
  });

  it('ignores zero counts, counts empty stacks as root self time, rejects bad counts', () => {
    const root = mergeStacks([
      { frames: ['a'], count: 0 },
      { frames: [], count: 2 },
    ]);
    expect(root).toEqual({ name: 'all', self: 2, total: 2, children: [] });
    expect(() => mergeStacks([{ frames: ['a'], count: -3 }])).toThrow(RangeError);
  });
});

describe('layoutFrames', () => {
  it('places children side by side in samples, root first, parents before children', () => {
    const rects = layoutFrames(mergeStacks(sample), { widthPx: 1000, minWidthPx: 0 });
    expect(rects.map((r) => [r.name, r.depth, r.x, r.width])).toEqual([
      ['all', 0, 0, 20],
      ['main', 1, 0, 10],
      ['a', 2, 0, 2],
      ['b', 2, 2, 8],
      ['x', 3, 2, 7],
      ['other', 1, 10, 10],
    ]);
    const b = rects.find((r) => r.name === 'b');
    expect(b).toMatchObject({ self: 1, total: 8 });
  });

  it('prunes frames narrower than minWidthPx, with their descendants, keeping x offsets exact', () => {
    // 20 samples over 100 px = 5 px per sample: 'a' is 10 px, 'b' 40 px, 'x' 35 px.
    const rects = layoutFrames(mergeStacks(sample), { widthPx: 100, minWidthPx: 11 });
    expect(rects.map((r) => r.name)).toEqual(['all', 'main', 'b', 'x', 'other']);
    expect(rects.find((r) => r.name === 'b')!.x).toBe(2);
    const pruned = layoutFrames(mergeStacks(sample), { widthPx: 100, minWidthPx: 36 });
    expect(pruned.map((r) => r.name)).toEqual(['all', 'main', 'b', 'other']);
  });

  it('keeps frames exactly at the minimum width', () => {
    const rects = layoutFrames(mergeStacks(sample), { widthPx: 100, minWidthPx: 10 });
    expect(rects.map((r) => r.name)).toContain('a');
  });

  it('returns nothing for an empty tree and validates options', () => {
    expect(layoutFrames(mergeStacks([]), { widthPx: 100, minWidthPx: 0.1 })).toEqual([]);
    expect(() => layoutFrames(mergeStacks(sample), { widthPx: 0, minWidthPx: 0 })).toThrow(RangeError);
    expect(() => layoutFrames(mergeStacks(sample), { widthPx: 10, minWidthPx: -1 })).toThrow(RangeError);
  });
});

describe('frame colours', () => {
  it.each([
    ['heavy (/app/work.lua:12)', 'lua'],
    ['(/app/work.lua:3)', 'lua'],
    ['content_by_lua(nginx.conf:40) (content_by_lua(nginx.conf:40):1)', 'lua'],
    ['(content_by_lua(nginx.conf:40):7)', 'lua'],
    ['do_epoll_wait_[k]', 'kernel'],
    ['[unknown]_[k]', 'kernel'],
    ['[GC]', 'vm'],
    ['[JIT compiler]', 'vm'],
    ['[trace exit]', 'vm'],
    ['[unknown]', 'vm'],
    ['[libfoo.so+0x12]', 'vm'],
    ['ngx_http_lua_content_handler', 'native'],
    ['string.format', 'native'],
    ['operator new(unsigned long)', 'native'],
    ['foo(int:3)', 'native'],
    ['all', 'native'],
    // stapxx lj-lua-stacks / ngx-sample-lua-bt, collapsed
    ['@/app/work.lua:12', 'lua'],
    ['T:@/app/work.lua:12', 'lua'],
    ['=content_by_lua(nginx.conf:40):3', 'lua'],
    ['C:ngx_http_lua_ngx_say', 'native'],
    ['builtin#21', 'native'],
  ] as const)('%s is %s', (name, kind) => {
    expect(frameKind(name)).toBe(kind);
  });

  it('is deterministic and well-formed', () => {
    for (const name of ['main', 'heavy (/app/work.lua:12)', '[GC]', 'x_[k]', '']) {
      expect(frameColor(name)).toMatch(/^#[0-9a-f]{6}$/);
      expect(frameColor(name)).toBe(frameColor(name));
    }
    // Pinned values: a change here changes every golden SVG.
    expect(hashName('')).toBe(0x811c9dc5);
    expect(hashName('a')).toBe(0xe40c292c);
  });

  it('varies with the name', () => {
    const colours = new Set(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((n) => frameColor(n)));
    expect(colours.size).toBeGreaterThan(4);
  });

  const rgb = (hex: string): [number, number, number] => [
    parseInt(hex.slice(1, 3), 16),
    parseInt(hex.slice(3, 5), 16),
    parseInt(hex.slice(5, 7), 16),
  ];

  it('gives each kind its own hue band', () => {
    for (let i = 0; i < 50; i++) {
      const [lr, lg, lb] = rgb(frameColor(`f${i} (/app/m.lua:${i})`));
      expect(lg).toBeGreaterThan(lr); // green
      expect(lg).toBeGreaterThan(lb);
      const [nr, ng, nb] = rgb(frameColor(`native_fn_${i}`));
      expect(nr).toBeGreaterThanOrEqual(ng); // red .. yellow
      expect(ng).toBeGreaterThanOrEqual(nb);
      const [kr, , kb] = rgb(frameColor(`sys_${i}_[k]`));
      expect(kb).toBeGreaterThan(kr); // blue
      const [vr, vg, vb] = rgb(frameColor(`[state ${i}]`));
      expect(vb).toBeGreaterThan(vg); // violet
      expect(vr).toBeGreaterThan(vg);
    }
  });
});

describe('colour schemes', () => {
  const names = ['heavy (/app/m.lua:3)', 'ngx_http_lua_content_handler', 'do_sys_open_[k]', '[GC]', 'x', 'y', 'z'];
  const hsl = (hex: string): [number, number, number] => {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const l = (max + min) / 2;
    const d = max - min;
    const s = d === 0 ? 0 : d / (1 - Math.abs(2 * l - 1));
    let h = 0;
    if (d !== 0) h = max === r ? 60 * (((g - b) / d + 6) % 6) : max === g ? 60 * ((b - r) / d + 2) : 60 * ((r - g) / d + 4);
    return [h, s, l];
  };

  it('kind is the default', () => {
    for (const n of names) expect(frameColor(n, 'kind')).toBe(frameColor(n));
  });

  it('hot puts every kind in the red-to-yellow band', () => {
    for (const n of names) {
      const [h] = hsl(frameColor(n, 'hot'));
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThanOrEqual(49);
    }
    expect(frameColor('ngx_x', 'hot')).toBe(frameColor('ngx_x', 'kind'));
  });

  it('mono is one low-saturation blue-grey for every kind', () => {
    for (const n of names) {
      const [h, sat] = hsl(frameColor(n, 'mono'));
      expect(h).toBeGreaterThanOrEqual(195);
      expect(h).toBeLessThanOrEqual(220);
      expect(sat).toBeLessThan(0.25);
    }
  });

  it('renders with the chosen scheme and rejects unknown ones', () => {
    const stacks: Stack[] = [{ frames: ['main', 'heavy (/app/m.lua:3)'], count: 2 }];
    const fills = (colors: 'kind' | 'hot' | 'mono') =>
      frameGroups(parseXml(renderFlameGraph(stacks, { colors }))).map((g) => child(g, 'rect').attrs.fill);
    expect(fills('mono')).toEqual(['all', 'main', 'heavy (/app/m.lua:3)'].map((n) => frameColor(n, 'mono')));
    expect(fills('hot')[2]).toBe(frameColor('heavy (/app/m.lua:3)', 'hot'));
    expect(() => renderFlameGraph(stacks, { colors: 'neon' as never })).toThrow('colors must be one of kind, hot, mono');
  });
});

describe('escapeXml and fitLabel', () => {
  it('escapes markup characters and replaces characters XML cannot carry', () => {
    expect(escapeXml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    expect(escapeXml('a\u0001b\uD800c')).toBe('a\uFFFDb\uFFFDc');
    expect(escapeXml('λ 😀\t')).toBe('λ 😀\t');
  });

  it('cuts labels to fit with ".." and drops them when too narrow', () => {
    // (width - 6) / 7.2 characters fit.
    expect(fitLabel('short', 100, 7.2)).toBe('short');
    expect(fitLabel('a_rather_long_function_name', 100, 7.2)).toBe('a_rather_lo..');
    expect(fitLabel('abcdef', 6 + 3 * 7.2, 7.2)).toBe('a..');
    expect(fitLabel('abcdef', 6 + 2 * 7.2, 7.2)).toBe('');
    expect(fitLabel('😀😀😀😀😀😀', 6 + 4 * 7.2, 7.2)).toBe('😀😀..');
  });
});

describe('renderFlameGraph', () => {
  const tricky = 'render (/app/<tmpl> "a" & \'b\'.lua:3)';
  const stacks: Stack[] = [
    { frames: ['nginx', 'lua_resume', 'heavy (/app/work.lua:12)'], count: 3 },
    { frames: ['nginx', 'lua_resume', tricky], count: 1 },
    { frames: ['nginx', 'epoll_wait', 'do_epoll_wait_[k]'], count: 4 },
  ];

  it('is well-formed XML with an svg root, a style and a script', () => {
    const svg = parseXml(renderFlameGraph(stacks, {}));
    expect(svg.name).toBe('svg');
    expect(svg.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    expect(svg.attrs.width).toBe('1200');
    expect(svg.attrs['font-family']).toBe('monospace');
    expect(findAll(svg, (e) => e.name === 'script')).toHaveLength(1);
    expect(findAll(svg, (e) => e.name === 'style')).toHaveLength(1);
    expect(findAll(svg, (e) => e.attrs.id === 'reset').map(textOf)).toEqual(['Reset zoom']);
    expect(textOf(findAll(svg, (e) => e.name === 'text')[0])).toBe('apisix-profile');
  });

  it('has one frame group per frame with a title naming samples and percent', () => {
    const svg = parseXml(renderFlameGraph(stacks, {}));
    const titles = frameGroups(svg).map((g) => textOf(child(g, 'title')));
    expect(titles).toEqual([
      'all (8 samples, 100.00%)',
      'nginx (8 samples, 100.00%)',
      'epoll_wait (4 samples, 50.00%)',
      'do_epoll_wait_[k] (4 samples, 50.00%)',
      'lua_resume (4 samples, 50.00%)',
      'heavy (/app/work.lua:12) (3 samples, 37.50%)',
      `${tricky} (1 samples, 12.50%)`,
    ]);
    for (const g of frameGroups(svg)) {
      expect(child(g, 'rect').attrs.fill).toMatch(/^#[0-9a-f]{6}$/);
      child(g, 'text');
    }
  });

  it('escapes names in titles and labels', () => {
    const out = renderFlameGraph(stacks, {});
    expect(out).toContain('render (/app/&lt;tmpl&gt; &quot;a&quot; &amp; &apos;b&apos;.lua:3)');
    expect(out).not.toContain('<tmpl>');
  });

  it('puts the root at the bottom and callees above their callers', () => {
    const svg = parseXml(renderFlameGraph(stacks, { frameHeight: 20 }));
    const ys = new Map(frameGroups(svg).map((g) => [g.attrs['data-d'], Number(child(g, 'rect').attrs.y)]));
    expect(ys.get('0')! - ys.get('1')!).toBe(20);
    expect(ys.get('1')! - ys.get('2')!).toBe(20);
    const height = Number(svg.attrs.height);
    expect(ys.get('0')!).toBeLessThan(height);
    expect(ys.get('0')!).toBeGreaterThan(height - 60);
  });

  it('maps samples to pixels inside the padding', () => {
    const svg = parseXml(renderFlameGraph(stacks, { width: 820 }));
    const rects = frameGroups(svg).map((g) => ({ ...g.attrs, ...child(g, 'rect').attrs }));
    const root = rects[0];
    expect([root.x, root.width]).toEqual(['10', '800']);
    const kernel = rects.find((r) => r['data-d'] === '3' && r['data-x'] === '0')!;
    expect([kernel.x, kernel.width]).toEqual(['10', '400']);
    const heavy = rects.find((r) => r['data-d'] === '3' && r['data-x'] === '4')!;
    expect([heavy.x, heavy.width]).toEqual(['410', '300']);
  });

  it('truncates labels to fit and prunes frames below minWidthPx', () => {
    const many: Stack[] = [
      { frames: ['root', 'a_very_long_function_name_that_does_not_fit'], count: 10 },
      { frames: ['root', 'tiny'], count: 1 },
    ];
    const svg = parseXml(renderFlameGraph(many, { width: 130, minWidthPx: 15 }));
    // span 110 px over 11 samples: the long frame is 100 px, 'tiny' 10 px (pruned).
    const labels = frameGroups(svg).map((g) => textOf(child(g, 'text')));
    expect(labels).toEqual(['all', 'root', 'a_very_long..']);
  });

  it('uses title, subtitle and options, and validates them', () => {
    const out = renderFlameGraph(stacks, { title: 'CPU <pid 42>', subtitle: 'nginx & friends' });
    expect(out).toContain('>CPU &lt;pid 42&gt;</text>');
    expect(out).toContain('>nginx &amp; friends</text>');
    expect(() => renderFlameGraph(stacks, { width: 0 })).toThrow(RangeError);
    expect(() => renderFlameGraph(stacks, { frameHeight: Number.NaN })).toThrow(RangeError);
    expect(() => renderFlameGraph(stacks, { minWidthPx: -1 })).toThrow(RangeError);
  });

  it('draws an icicle graph when inverted: root at the top, callees below', () => {
    const svg = parseXml(renderFlameGraph(stacks, { frameHeight: 20, inverted: true }));
    const ys = new Map(frameGroups(svg).map((g) => [g.attrs['data-d'], Number(child(g, 'rect').attrs.y)]));
    expect(ys.get('1')! - ys.get('0')!).toBe(20);
    expect(ys.get('3')! - ys.get('2')!).toBe(20);
    const upright = parseXml(renderFlameGraph(stacks, { frameHeight: 20 }));
    // Same frames and widths, only mirrored.
    const shape = (el: XmlElement) => frameGroups(el).map((g) => [g.attrs['data-x'], g.attrs['data-w'], child(g, 'rect').attrs.x]);
    expect(shape(svg)).toEqual(shape(upright));
    expect(ys.get('0')).toBe(Math.min(...ys.values()));
  });

  it('prunes by a percentage of all samples with minWidthPercent', () => {
    // 8 samples: epoll_wait and its kernel frame are 50%, the tricky frame 12.5%.
    const names = (o: object) => frameGroups(parseXml(renderFlameGraph(stacks, o))).map((g) => textOf(child(g, 'title')).split(' (')[0]);
    expect(names({ minWidthPercent: 12.5 })).toContain('render');
    expect(names({ minWidthPercent: 13 })).not.toContain('render');
    expect(names({ minWidthPercent: 13, width: 100 })).toEqual(names({ minWidthPercent: 13, width: 5000 }));
    expect(names({ minWidthPercent: 100 })).toEqual(['all', 'nginx']);
    expect(() => renderFlameGraph(stacks, { minWidthPercent: 101 })).toThrow(RangeError);
    expect(() => renderFlameGraph(stacks, { minWidthPercent: -1 })).toThrow(RangeError);
  });

  it('has search and reset controls, a matched line, and the script last', () => {
    const out = renderFlameGraph(stacks, {});
    const svg = parseXml(out);
    const byId = (id: string) => findAll(svg, (e) => e.attrs.id === id)[0];
    expect(textOf(byId('search'))).toBe('Search');
    expect(byId('search').attrs['text-anchor']).toBe('end');
    expect(textOf(byId('matched'))).toBe('');
    expect(byId('reset').attrs.display).toBe('none');
    // The script must come after the elements it looks up: a browser runs
    // it as soon as it is parsed.
    const last = svg.children.filter((c): c is XmlElement => typeof c !== 'string').pop()!;
    expect(last.name).toBe('script');
  });

  it('is deterministic', () => {
    const a = renderFlameGraph(stacks, { subtitle: 's' });
    const b = renderFlameGraph([...stacks].reverse(), { subtitle: 's' });
    expect(a).toBe(b);
  });

  it('says "no samples" for empty input', () => {
    for (const input of [[], [{ frames: ['a'], count: 0 }]]) {
      const out = renderFlameGraph(input, {});
      const svg = parseXml(out);
      expect(frameGroups(svg)).toHaveLength(0);
      expect(findAll(svg, (e) => e.name === 'text').map(textOf)).toContain('no samples');
    }
  });

  it('keeps the embedded script and style out of the way of XML', () => {
    const out = renderFlameGraph(stacks, {});
    expect(out.match(/<!\[CDATA\[/g)).toHaveLength(2);
    expect(out.match(/]]>/g)).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------
// Run the embedded script against a fake DOM built from the parsed SVG, just
// enough of it (attributes, text, events) to check zooming.

class FakeElement {
  parentNode: FakeElement | null = null;
  children: (FakeElement | string)[] = [];
  listeners = new Map<string, ((e: { target: FakeElement }) => void)[]>();
  constructor(
    public tagName: string,
    public attrs: Record<string, string>,
  ) {}
  getAttribute(n: string): string | null {
    return n in this.attrs ? this.attrs[n] : null;
  }
  setAttribute(n: string, v: string): void {
    this.attrs[n] = String(v);
  }
  removeAttribute(n: string): void {
    delete this.attrs[n];
  }
  getElementsByTagName(n: string): FakeElement[] {
    const out: FakeElement[] = [];
    const walk = (e: FakeElement): void => {
      for (const c of e.children) {
        if (typeof c === 'string') continue;
        if (c.tagName === n) out.push(c);
        walk(c);
      }
    };
    walk(this);
    return out;
  }
  get textContent(): string {
    return this.children.map((c) => (typeof c === 'string' ? c : c.textContent)).join('');
  }
  set textContent(v: string) {
    this.children = [v];
  }
  addEventListener(type: string, fn: (e: { target: FakeElement }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  dispatch(type: string): void {
    for (let e: FakeElement | null = this; e; e = e.parentNode) {
      for (const fn of e.listeners.get(type) ?? []) fn({ target: this });
    }
  }
}

interface FakeDocument {
  root: FakeElement;
  getElementById(id: string): FakeElement | null;
  addEventListener(type: string, fn: (e: FakeKey) => void): void;
  key(key: string, mods?: { ctrlKey?: boolean }): FakeKey;
}

interface FakeKey {
  key: string;
  ctrlKey?: boolean;
  defaultPrevented: boolean;
  preventDefault(): void;
}

function fakeDocument(el: XmlElement): FakeDocument {
  const build = (x: XmlElement, parent: FakeElement | null): FakeElement => {
    const f = new FakeElement(x.name, { ...x.attrs });
    f.parentNode = parent;
    f.children = x.children.map((c) => (typeof c === 'string' ? c : build(c, f)));
    return f;
  };
  const root = build(el, null);
  const all = [root, ...allElements(root)];
  const keyListeners: ((e: FakeKey) => void)[] = [];
  return {
    root,
    getElementById: (id) => all.find((e) => e.attrs.id === id) ?? null,
    addEventListener: (type, fn) => {
      if (type === 'keydown') keyListeners.push(fn);
    },
    key(key, mods = {}) {
      const e: FakeKey = { key, ...mods, defaultPrevented: false, preventDefault: () => (e.defaultPrevented = true) };
      for (const fn of keyListeners) fn(e);
      return e;
    },
  };
}

/** Just enough of window: a URL with a fragment, history, prompt, popstate. */
class FakeWindow {
  href = 'file:///tmp/flame.svg';
  entries: string[] = [];
  answers: (string | null)[] = [];
  prompts: string[] = [];
  private popstate: (() => void)[] = [];
  location = {
    owner: this,
    get hash(): string {
      const i = this.owner.href.indexOf('#');
      return i < 0 || i === this.owner.href.length - 1 ? '' : this.owner.href.slice(i);
    },
    get href(): string {
      return this.owner.href;
    },
  };
  history = {
    pushState: (_state: unknown, _title: string, url: string) => {
      this.href = url.startsWith('#') ? `${this.href.split('#')[0]}${url}` : url;
      this.entries.push(this.href);
    },
  };
  prompt(message: string, value: string): string | null {
    this.prompts.push(`${message}|${value}`);
    return this.answers.shift() ?? null;
  }
  addEventListener(type: string, fn: () => void): void {
    if (type === 'popstate') this.popstate.push(fn);
  }
  /** Go to another URL as Back/Forward would. */
  pop(href: string): void {
    this.href = href;
    for (const fn of this.popstate) fn();
  }
}

function allElements(e: FakeElement): FakeElement[] {
  return e.children.flatMap((c) => (typeof c === 'string' ? [] : [c, ...allElements(c)]));
}

describe('embedded zoom script', () => {
  const stacks: Stack[] = [
    { frames: ['main', 'left', 'leaf_a'], count: 2 },
    { frames: ['main', 'right', 'a_long_function_name'], count: 2 },
    { frames: ['main', 'right'], count: 2 },
    { frames: ['other'], count: 4 },
  ];

  const setup = (win?: FakeWindow) => {
    const doc = fakeDocument(parseXml(renderFlameGraph(stacks, { width: 220 })));
    if (win) new Function('document', 'window', FLAMEGRAPH_SCRIPT)(doc, win);
    else new Function('document', FLAMEGRAPH_SCRIPT)(doc);
    const frames = allElements(doc.root).filter((e) => e.tagName === 'g' && e.attrs.class?.startsWith('f'));
    const byName = (n: string): FakeElement =>
      frames.find((g) => g.getElementsByTagName('title')[0].textContent.startsWith(`${n} (`))!;
    const rect = (n: string): [string, string] => {
      const r = byName(n).getElementsByTagName('rect')[0];
      return [r.attrs.x, r.attrs.width];
    };
    const hits = () =>
      frames.filter((g) => g.attrs.class?.split(' ').includes('match')).map((g) => g.getElementsByTagName('title')[0].textContent.split(' (')[0]);
    return { doc, byName, rect, hits };
  };

  it('zooms into a clicked frame and resets', () => {
    const { doc, byName, rect } = setup();
    const reset = doc.getElementById('reset')!;
    // 10 samples over 200 px: 'right' is 4 samples = 80 px at x = 10 + 2 * 20.
    expect(rect('right')).toEqual(['50', '80']);
    byName('right').getElementsByTagName('rect')[0].dispatch('click');
    expect(rect('right')).toEqual(['10', '200']);
    expect(rect('a_long_function_name')).toEqual(['10', '100']);
    expect(rect('main')).toEqual(['10', '200']);
    expect(byName('main').attrs.class).toBe('f faded');
    expect(byName('all').attrs.class).toBe('f faded');
    for (const hidden of ['left', 'leaf_a', 'other']) expect(byName(hidden).attrs.display).toBe('none');
    expect(reset.attrs.display).toBeUndefined();
    // Labels are recomputed for the new width: 100 px fits 13 characters.
    expect(byName('a_long_function_name').getElementsByTagName('text')[0].textContent).toBe('a_long_func..');

    reset.dispatch('click');
    expect(rect('right')).toEqual(['50', '80']);
    expect(byName('other').attrs.display).toBeUndefined();
    expect(byName('main').attrs.class).toBe('f');
    expect(reset.attrs.display).toBe('none');
  });

  it('shows the hovered frame in the status line', () => {
    const { doc, byName } = setup();
    const status = doc.getElementById('status')!;
    byName('other').getElementsByTagName('rect')[0].dispatch('mouseover');
    expect(status.textContent).toBe('other (4 samples, 40.00%)');
    byName('other').getElementsByTagName('rect')[0].dispatch('mouseout');
    expect(status.textContent).toMatch(/zoom/);
  });
});

describe('embedded search script', () => {
  // 10 samples: main 6 (left 2 > leaf_a 2, right 4 > a_long_function_name 2), other 4.
  const stacks: Stack[] = [
    { frames: ['main', 'left', 'leaf_a'], count: 2 },
    { frames: ['main', 'right', 'a_long_function_name'], count: 2 },
    { frames: ['main', 'right'], count: 2 },
    { frames: ['other'], count: 4 },
  ];

  const setup = (hash = '') => {
    const win = new FakeWindow();
    win.href += hash;
    const doc = fakeDocument(parseXml(renderFlameGraph(stacks, { width: 220 })));
    new Function('document', 'window', FLAMEGRAPH_SCRIPT)(doc, win);
    const frames = allElements(doc.root).filter((e) => e.tagName === 'g' && e.attrs.class?.startsWith('f'));
    const byName = (n: string): FakeElement =>
      frames.find((g) => g.getElementsByTagName('title')[0].textContent.startsWith(`${n} (`))!;
    const hits = () =>
      frames
        .filter((g) => g.attrs.class!.split(' ').includes('match'))
        .map((g) => g.getElementsByTagName('title')[0].textContent.split(' (')[0]);
    const text = (id: string) => doc.getElementById(id)!.textContent;
    const click = (n: string) => byName(n).getElementsByTagName('rect')[0].dispatch('click');
    return { win, doc, byName, hits, text, click };
  };

  it('highlights matches and says what share of samples they cover, counting nested matches once', () => {
    const { win, doc, hits, text } = setup();
    win.answers.push('a');
    doc.getElementById('search')!.dispatch('click');
    expect(win.prompts[0]).toMatch(/^Search frames .*\|$/);
    // 'a' (any case) matches main, leaf_a, a_long_function_name and 'all':
    // everything lies under 'all', so 100%.
    expect(hits()).toEqual(['all', 'main', 'leaf_a', 'a_long_function_name']);
    expect(text('matched')).toBe('Matched: 100.00% (10 of 10 samples)');
    expect(text('search')).toBe('Reset search');
    expect(win.location.hash).toBe('#search=a');

    doc.getElementById('search')!.dispatch('click'); // "Reset search"
    expect(hits()).toEqual([]);
    expect(text('matched')).toBe('');
    expect(text('search')).toBe('Search');
    expect(win.href).toBe('file:///tmp/flame.svg');

    win.answers.push('^(leaf_a|right)$');
    doc.getElementById('search')!.dispatch('click');
    expect(hits()).toEqual(['leaf_a', 'right']);
    expect(text('matched')).toBe('Matched: 60.00% (6 of 10 samples)');
    expect(win.location.hash).toBe('#search=%5E(leaf_a%7Cright)%24');
  });

  it('is case-insensitive for lower-case text, literal for invalid expressions', () => {
    const { win, doc, hits, text } = setup();
    win.answers.push('OTHER', 'other', 'a_long_function_name(');
    doc.getElementById('search')!.dispatch('click');
    expect(hits()).toEqual([]);
    expect(text('matched')).toBe('Matched: 0.00% (0 of 10 samples)');
    doc.key('/');
    expect(hits()).toEqual(['other']);
    doc.key('f', { ctrlKey: true });
    expect(hits()).toEqual([]); // "a_long_function_name(" is taken literally
    expect(doc.key('Escape').defaultPrevented).toBe(false);
    expect(text('matched')).toBe('');
  });

  it('keeps a cancelled prompt from changing anything', () => {
    const { win, doc, hits } = setup();
    win.answers.push('main');
    doc.key('/');
    win.answers.push(null);
    expect(doc.key('/').defaultPrevented).toBe(true);
    expect(hits()).toEqual(['main']);
    expect(win.entries).toHaveLength(1);
  });

  it('keeps zoom and search in the URL fragment and restores them', () => {
    const first = setup();
    first.click('right');
    expect(first.win.location.hash).toBe('#zoom=2,2');
    first.win.answers.push('long');
    first.doc.key('/');
    expect(first.win.location.hash).toBe('#zoom=2,2&search=long');

    // A reload (or a shared link) with that fragment shows the same view.
    const again = setup('#zoom=2,2&search=long');
    expect(again.byName('right').getElementsByTagName('rect')[0].attrs.width).toBe('200');
    expect(again.byName('other').attrs.display).toBe('none');
    expect(again.byName('main').attrs.class).toBe('f faded');
    expect(again.hits()).toEqual(['a_long_function_name']);
    expect(again.byName('a_long_function_name').attrs.class).toBe('f match');
    expect(again.text('matched')).toBe('Matched: 20.00% (2 of 10 samples)');
    expect(again.doc.getElementById('reset')!.attrs.display).toBeUndefined();
    expect(again.win.entries).toEqual([]); // restoring does not add history

    // Back to the plain view.
    again.win.pop('file:///tmp/flame.svg');
    expect(again.hits()).toEqual([]);
    expect(again.byName('other').attrs.display).toBeUndefined();
    expect(again.doc.getElementById('reset')!.attrs.display).toBe('none');
  });

  it('ignores fragments that name no frame or are malformed', () => {
    for (const hash of ['#zoom=9,9', '#zoom=x', '#search=%E0%A4%A', '#junk', '#zoom=1,0x', '#zoom=-1,0']) {
      const { byName, hits, doc } = setup(hash);
      expect(byName('other').attrs.display, hash).toBeUndefined();
      expect(hits(), hash).toEqual([]);
      expect(doc.getElementById('reset')!.attrs.display, hash).toBe('none');
    }
    const { byName } = setup('#zoom=1,0&search=');
    expect(byName('other').attrs.display).toBe('none');
  });

  it('zooms back out with "Reset zoom" and a click on the root', () => {
    const { win, doc, click, byName } = setup();
    click('left');
    expect(byName('other').attrs.display).toBe('none');
    doc.getElementById('reset')!.dispatch('click');
    expect(byName('other').attrs.display).toBeUndefined();
    click('left');
    click('all');
    expect(byName('other').attrs.display).toBeUndefined();
    expect(win.entries.map((e) => e.split('#')[1] ?? '')).toEqual(['zoom=2,0', '', 'zoom=2,0', '']);
  });
});

describe('golden SVG', () => {
  const input = new URL('../../fixtures/report/small.folded', import.meta.url);
  it('matches fixtures/report/small.svg (BLESS=1 rewrites it)', () => {
    const stacks = parseFolded(readFileSync(input, 'utf8'));
    const out = renderFlameGraph(stacks, { title: 'small', subtitle: 'fixtures/report/small.folded' });
    parseXml(out);
    expectGolden('small.svg', out);
  });

  it('matches fixtures/report/small-icicle-mono.svg (BLESS=1 rewrites it)', () => {
    const stacks = parseFolded(readFileSync(input, 'utf8'));
    const out = renderFlameGraph(stacks, { title: 'small', inverted: true, colors: 'mono', width: 900, minWidthPercent: 3 });
    parseXml(out);
    expectGolden('small-icicle-mono.svg', out);
  });
});
