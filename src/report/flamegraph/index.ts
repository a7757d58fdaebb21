export { mergeStacks, type FrameNode } from './merge.js';
export { layoutFrames, type FrameRect, type LayoutOptions } from './layout.js';
export { frameColor, frameKind, hashName, type FrameKind } from './color.js';
export { renderFlameGraph, escapeXml, fitLabel, type FlameGraphOptions } from './svg.js';
