export { mergeStacks, type FrameNode } from './merge.js';
export { layoutFrames, layoutNodes, type FrameRect, type LaidOutNode, type LayoutOptions } from './layout.js';
export { COLOR_SCHEMES, frameColor, frameKind, hashName, type ColorScheme, type FrameKind } from './color.js';
export {
  renderFlameGraph,
  renderFrameTree,
  escapeXml,
  fitLabel,
  type FlameGraphOptions,
  type FramePainter,
} from './svg.js';
