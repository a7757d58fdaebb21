export { mergeStacks, type FrameNode } from './merge.js';
export { layoutFrames, layoutNodes, type FrameRect, type LaidOutNode, type LayoutOptions } from './layout.js';
export { frameColor, frameKind, hashName, type FrameKind } from './color.js';
export {
  renderFlameGraph,
  renderFrameTree,
  escapeXml,
  fitLabel,
  type FlameGraphOptions,
  type FramePainter,
} from './svg.js';
