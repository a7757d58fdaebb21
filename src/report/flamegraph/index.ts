export { mergeStacks, type FrameNode } from './merge.js';
export { layoutFrames, layoutNodes, type FrameRect, type LaidOutNode, type LayoutOptions } from './layout.js';
export { COLOR_SCHEMES, frameColor, hashName, type ColorScheme } from './color.js';
export { frameKind, type FrameKind } from '../frame.js';
export {
  renderFlameGraph,
  renderFrameTree,
  escapeXml,
  fitLabel,
  type FlameGraphOptions,
  type FramePainter,
} from './svg.js';
