// Render pass: stacks -> a self-contained, interactive flame graph SVG.
// The root ("all") is at the bottom and callees grow upwards (or, inverted,
// an icicle graph: root at the top, callees below). Output depends only on
// the input and options: no dates, no random ids.

import type { Stack } from '../stack.js';
import { FLAMEGRAPH_CSS, FLAMEGRAPH_SCRIPT } from './assets.js';
import { COLOR_SCHEMES, frameColor, type ColorScheme } from './color.js';
import { layoutNodes, type FrameRect } from './layout.js';
import { mergeStacks, type FrameNode } from './merge.js';

export interface FlameGraphOptions {
  /** Heading at the top of the image. Default "apisix-profile". */
  title?: string;
  /** Second heading line, e.g. target and duration. Omitted by default. */
  subtitle?: string;
  /** Image width in pixels. Default 1200. */
  width?: number;
  /** Height of one frame row in pixels. Default 16. */
  frameHeight?: number;
  /** Frames narrower than this many pixels are left out. Default 0.1. */
  minWidthPx?: number;
  /**
   * Frames narrower than this percentage of all samples are left out
   * (0..100). When given, it replaces minWidthPx.
   */
  minWidthPercent?: number;
  /** Icicle graph: root at the top, callees below their callers. Default false. */
  inverted?: boolean;
  /** Colour scheme of the plain flame graph (see ColorScheme). Default "kind". */
  colors?: ColorScheme;
  /** What the stacks' counts are, in tooltips and the search's match line. Default "samples" (off-CPU: "µs"). */
  unit?: string;
}

const DEFAULTS = {
  title: 'apisix-profile',
  width: 1200,
  frameHeight: 16,
  minWidthPx: 0.1,
  colors: 'kind' as ColorScheme,
};

const PAD_X = 10;
const TITLE_Y = 24;
const SUBTITLE_Y = 42;
const MAX_FONT_SIZE = 12;
/** Advance width of one monospace character, as a fraction of the font size. */
const CHAR_WIDTH_EM = 0.6;
/** Gap between a frame's left edge and its label. */
const LABEL_INSET = 3;
const ROOT_NAME = 'all';
const HINT = 'Click a frame to zoom in; hover for details; / or Ctrl-F to search.';

/** Escape text for use in XML content and double-quoted attributes. */
export function escapeXml(text: string): string {
  let out = '';
  for (const ch of text) {
    switch (ch) {
      case '&': out += '&amp;'; break;
      case '<': out += '&lt;'; break;
      case '>': out += '&gt;'; break;
      case '"': out += '&quot;'; break;
      case "'": out += '&apos;'; break;
      default: {
        const cp = ch.codePointAt(0) as number;
        // Characters XML 1.0 cannot carry at all (control characters, lone
        // surrogates, U+FFFE/U+FFFF): frame names read from process memory
        // may contain them, so show a replacement character instead.
        const allowed =
          cp === 0x9 || cp === 0xa || cp === 0xd ||
          (cp >= 0x20 && cp <= 0xd7ff) ||
          (cp >= 0xe000 && cp <= 0xfffd) ||
          cp >= 0x10000;
        out += allowed ? ch : '\uFFFD';
      }
    }
  }
  return out;
}

/** Pixels with at most two decimals, no trailing zeros, never "-0". */
function px(value: number): string {
  const s = String(Number(value.toFixed(2)));
  return s === '-0' ? '0' : s;
}

/**
 * Shorten `name` to what fits in `widthPx` at `charWidth` pixels per
 * character: the whole name, or a prefix followed by "..", or nothing when
 * fewer than three characters fit. Counts code points, so a surrogate pair
 * is never split.
 */
export function fitLabel(name: string, widthPx: number, charWidth: number): string {
  // The epsilon keeps exact fits (e.g. 6 + 4 * 7.2 px) from rounding down.
  const room = Math.floor((widthPx - 2 * LABEL_INSET) / charWidth + 1e-9);
  if (room < 3) return '';
  const chars = Array.from(name);
  return chars.length <= room ? name : `${chars.slice(0, room - 2).join('')}..`;
}

function checkOption(name: string, value: number, min: number, inclusive: boolean): void {
  const ok = Number.isFinite(value) && (inclusive ? value >= min : value > min);
  if (!ok) {
    throw new RangeError(
      `flame graph option ${name} must be a number ${inclusive ? '>=' : '>'} ${min}, got ${String(value)}`,
    );
  }
}

/** Percentage of `part` in `whole` with two decimals, e.g. "12.50". */
function percent(part: number, whole: number): string {
  return ((part * 100) / whole).toFixed(2);
}

/**
 * How each frame of a flame graph is coloured and described. The plain
 * flame graph colours by kind and name; the differential one by change.
 */
export interface FramePainter {
  /** Fill colour, `#rrggbb`. */
  fill(node: FrameNode, rect: FrameRect): string;
  /**
   * Tooltip and status-line text. It must read `name (details)` with no
   * " (" inside the details: the zoom script takes the name from the text
   * before the last " (".
   */
  info(node: FrameNode, rect: FrameRect, rootTotal: number): string;
}

function plainPainter(scheme: ColorScheme, unit: string): FramePainter {
  return {
    fill: (node) => frameColor(node.name, scheme),
    info: (node, _rect, rootTotal) => `${node.name} (${node.total} ${unit}, ${percent(node.total, rootTotal)}%)`,
  };
}

/**
 * Render stacks (root first) as a flame graph SVG document. Frames get a
 * tooltip `name (N samples, P%)`, a colour from the colour scheme (by
 * default from their kind and name), and a label cut to fit; clicking a
 * frame zooms into it, "Search" highlights matching frames. With no samples
 * the image just says "no samples".
 */
export function renderFlameGraph(stacks: readonly Stack[], options: FlameGraphOptions = {}): string {
  const colors = options.colors ?? DEFAULTS.colors;
  if (!COLOR_SCHEMES.includes(colors)) {
    throw new RangeError(`flame graph option colors must be one of ${COLOR_SCHEMES.join(', ')}, got ${String(colors)}`);
  }
  return renderFrameTree(mergeStacks(stacks, ROOT_NAME), options, plainPainter(colors, options.unit ?? 'samples'));
}

/**
 * Render an already merged call tree (see mergeStacks) with the given
 * painter: the common part of the plain and the differential flame graph.
 */
export function renderFrameTree(root: FrameNode, options: FlameGraphOptions, painter: FramePainter): string {
  const title = options.title ?? DEFAULTS.title;
  const subtitle = options.subtitle;
  const width = options.width ?? DEFAULTS.width;
  const frameHeight = options.frameHeight ?? DEFAULTS.frameHeight;
  checkOption('width', width, 2 * PAD_X, false);
  checkOption('frameHeight', frameHeight, 1, true);
  const span = width - 2 * PAD_X;
  let minWidthPx = options.minWidthPx ?? DEFAULTS.minWidthPx;
  checkOption('minWidthPx', minWidthPx, 0, true);
  if (options.minWidthPercent !== undefined) {
    const pct = options.minWidthPercent;
    if (!(pct >= 0 && pct <= 100)) {
      throw new RangeError(`flame graph option minWidthPercent must be a number from 0 to 100, got ${String(pct)}`);
    }
    minWidthPx = (span * pct) / 100;
  }
  const inverted = options.inverted ?? false;

  const laid = layoutNodes(root, { widthPx: span, minWidthPx });
  const fontSize = Math.max(0, Math.min(MAX_FONT_SIZE, frameHeight - 3));
  const charWidth = fontSize * CHAR_WIDTH_EM;

  const framesTop = subtitle !== undefined ? SUBTITLE_Y + 12 : TITLE_Y + 12;
  const maxDepth = laid.reduce((m, l) => Math.max(m, l.rect.depth), 0);
  const framesBottom = laid.length > 0 ? framesTop + (maxDepth + 1) * frameHeight : framesTop + 40;
  const height = framesBottom + 26;

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8" standalone="no"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${px(width)}" height="${px(height)}"` +
      ` viewBox="0 0 ${px(width)} ${px(height)}" font-family="monospace" font-size="12">`,
  );
  out.push(`<style type="text/css"><![CDATA[${FLAMEGRAPH_CSS}]]></style>`);
  out.push(`<rect x="0" y="0" width="${px(width)}" height="${px(height)}" fill="#f8f8f8"/>`);
  out.push(
    `<text x="${px(width / 2)}" y="${TITLE_Y}" text-anchor="middle" font-size="17">${escapeXml(title)}</text>`,
  );
  if (subtitle !== undefined) {
    out.push(
      `<text x="${px(width / 2)}" y="${SUBTITLE_Y}" text-anchor="middle" fill="#555">${escapeXml(subtitle)}</text>`,
    );
  }

  if (laid.length === 0) {
    out.push(
      `<text x="${px(width / 2)}" y="${px(framesTop + 24)}" text-anchor="middle" font-size="14">no samples</text>`,
    );
    out.push('</svg>');
    return `${out.join('\n')}\n`;
  }

  out.push(`<text id="reset" x="${PAD_X}" y="${TITLE_Y}" display="none">Reset zoom</text>`);
  out.push(`<text id="search" x="${px(width - PAD_X)}" y="${TITLE_Y}" text-anchor="end">Search</text>`);
  out.push(
    `<g id="frames" data-x0="${PAD_X}" data-span="${px(span)}" data-cw="${px(charWidth)}"` +
      (options.unit !== undefined && options.unit !== 'samples' ? ` data-unit="${escapeXml(options.unit)}"` : '') +
      ` font-size="${px(fontSize)}">`,
  );
  const total = root.total;
  const pxPerSample = span / total;
  for (const { rect: r, node } of laid) {
    const x = PAD_X + r.x * pxPerSample;
    const w = r.width * pxPerSample;
    const y = framesTop + (inverted ? r.depth : maxDepth - r.depth) * frameHeight;
    const label = fontSize > 0 ? fitLabel(r.name, w, charWidth) : '';
    const baseline = y + (frameHeight - 1) / 2 + fontSize * 0.35;
    out.push(
      `<g class="f" data-x="${r.x}" data-w="${r.width}" data-d="${r.depth}">` +
        `<title>${escapeXml(painter.info(node, r, total))}</title>` +
        `<rect x="${px(x)}" y="${px(y)}" width="${px(w)}" height="${px(frameHeight - 1)}"` +
        ` fill="${painter.fill(node, r)}" rx="2"/>` +
        `<text x="${px(x + LABEL_INSET)}" y="${px(baseline)}">${escapeXml(label)}</text></g>`,
    );
  }
  out.push('</g>');
  out.push(`<text id="status" x="${PAD_X}" y="${px(framesBottom + 18)}">${escapeXml(HINT)}</text>`);
  out.push(`<text id="matched" x="${px(width - PAD_X)}" y="${px(framesBottom + 18)}" text-anchor="end"></text>`);
  // Last, so the elements it looks up exist when a browser runs it.
  out.push(`<script type="text/ecmascript"><![CDATA[${FLAMEGRAPH_SCRIPT}]]></script>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
