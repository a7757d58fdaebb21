// Layout pass: call tree -> rectangles in sample units, pruning frames too
// narrow to see.

import type { FrameNode } from './merge.js';

/** One frame to draw. `x` and `width` are in samples, not pixels. */
export interface FrameRect {
  name: string;
  /** 0 for the root, 1 for its children, ... */
  depth: number;
  /** Offset from the left edge, in samples. */
  x: number;
  /** Width in samples (equals `total`). */
  width: number;
  self: number;
  total: number;
}

export interface LayoutOptions {
  /** Pixel width the root frame spans. */
  widthPx: number;
  /** Frames (and so their descendants) narrower than this many pixels are dropped. */
  minWidthPx: number;
}

/** A laid-out frame together with the tree node it was made from. */
export interface LaidOutNode {
  rect: FrameRect;
  node: FrameNode;
}

/**
 * Lay the tree out: each frame spans its total samples, children sit side by
 * side in their (sorted) order starting at the parent's left edge. Returned
 * in depth-first pre-order, so the root comes first and a parent always
 * precedes its children. Pruned frames still take up their place, so the
 * x offsets of the frames that remain are exact.
 */
export function layoutFrames(root: FrameNode, options: LayoutOptions): FrameRect[] {
  return layoutNodes(root, options).map((laid) => laid.rect);
}

/**
 * The same layout as `layoutFrames`, keeping each rectangle's tree node, for
 * renderers that look up more about a frame than its counts.
 */
export function layoutNodes(root: FrameNode, options: LayoutOptions): LaidOutNode[] {
  const { widthPx, minWidthPx } = options;
  if (!(widthPx > 0) || !Number.isFinite(widthPx)) {
    throw new RangeError(`widthPx must be a positive number, got ${String(widthPx)}`);
  }
  if (!(minWidthPx >= 0) || !Number.isFinite(minWidthPx)) {
    throw new RangeError(`minWidthPx must be a non-negative number, got ${String(minWidthPx)}`);
  }
  const laid: LaidOutNode[] = [];
  if (root.total <= 0) return laid;
  const pxPerSample = widthPx / root.total;

  const visit = (node: FrameNode, depth: number, x: number): void => {
    if (node.total * pxPerSample < minWidthPx) return;
    laid.push({
      rect: { name: node.name, depth, x, width: node.total, self: node.self, total: node.total },
      node,
    });
    let childX = x;
    for (const child of node.children) {
      visit(child, depth + 1, childX);
      childX += child.total;
    }
  };
  visit(root, 0, 0);
  return laid;
}
