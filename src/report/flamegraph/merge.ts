// Merge pass: stacks -> a call tree with sample counts.

import { checkCount, type Stack } from '../stack.js';

/** One node of the merged call tree. */
export interface FrameNode {
  name: string;
  /** Samples where this frame was the leaf. */
  self: number;
  /** Samples where this frame was on the stack (self + children's totals). */
  total: number;
  /** Callees, sorted by name (code-unit order). */
  children: FrameNode[];
}

interface Building {
  name: string;
  self: number;
  total: number;
  children: Map<string, Building>;
}

function byName(a: FrameNode, b: FrameNode): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function freeze(node: Building): FrameNode {
  const children = [...node.children.values()].map(freeze).sort(byName);
  return { name: node.name, self: node.self, total: node.total, children };
}

/**
 * Merge stacks (root first) into a tree under a synthetic root named
 * `rootName`. Identical prefixes share nodes; the root's total is the sum of
 * all counts. Stacks with a zero count are ignored; a stack with no frames
 * counts as self time of the root. Throws a RangeError for a negative or
 * non-integer count.
 */
export function mergeStacks(stacks: readonly Stack[], rootName = 'all'): FrameNode {
  const root: Building = { name: rootName, self: 0, total: 0, children: new Map() };
  for (const stack of stacks) {
    const { count } = stack;
    checkCount(count);
    if (count === 0) continue;
    let node = root;
    node.total += count;
    for (const name of stack.frames) {
      let child = node.children.get(name);
      if (!child) {
        child = { name, self: 0, total: 0, children: new Map() };
        node.children.set(name, child);
      }
      child.total += count;
      node = child;
    }
    node.self += count;
  }
  return freeze(root);
}
