// Frame colours: the kind of frame picks a hue band, a hash of the name picks
// a stable spot inside it. No randomness, so golden SVGs stay byte-identical.
import { frameKind, type FrameKind } from '../frame.js';

/**
 * How frames are coloured:
 * - `kind` (default): the frame kind picks a hue band (Lua green, native C
 *   red to yellow, kernel blue, VM states and unresolved frames violet), the
 *   name a stable spot inside it;
 * - `hot`: every frame in the red-to-yellow band, as flamegraph.pl does;
 * - `mono`: shades of one blue-grey, for print and so search matches stand out.
 */
export type ColorScheme = 'kind' | 'hot' | 'mono';
export const COLOR_SCHEMES: readonly ColorScheme[] = ['kind', 'hot', 'mono'];

/** 32-bit FNV-1a over the UTF-16 code units of `text`. */
export function hashName(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

interface Band {
  /** Hue range in degrees. */
  hue: [number, number];
  /** Saturation and lightness ranges, 0..1. */
  sat: [number, number];
  light: [number, number];
}

const BANDS: Record<FrameKind, Band> = {
  // Classic flame colours for native code: red through yellow.
  native: { hue: [0, 48], sat: [0.7, 0.85], light: [0.55, 0.68] },
  // Lua code stands out in green.
  lua: { hue: [85, 140], sat: [0.45, 0.65], light: [0.45, 0.6] },
  // Kernel in blue/aqua.
  kernel: { hue: [185, 215], sat: [0.5, 0.7], light: [0.55, 0.68] },
  // VM states and unresolved frames in violet.
  vm: { hue: [265, 300], sat: [0.35, 0.5], light: [0.6, 0.72] },
};

const MONO: Band = { hue: [200, 215], sat: [0.12, 0.22], light: [0.62, 0.8] };

function within(range: [number, number], fraction: number): number {
  return range[0] + (range[1] - range[0]) * fraction;
}

function hslToHex(hueDeg: number, s: number, l: number): string {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const hp = hueDeg / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  let r = 0;
  let g = 0;
  let b = 0;
  if (hp < 1) [r, g, b] = [c, x, 0];
  else if (hp < 2) [r, g, b] = [x, c, 0];
  else if (hp < 3) [r, g, b] = [0, c, x];
  else if (hp < 4) [r, g, b] = [0, x, c];
  else if (hp < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  const m = l - c / 2;
  const hex = (v: number): string =>
    Math.min(255, Math.max(0, Math.round((v + m) * 255)))
      .toString(16)
      .padStart(2, '0');
  return `#${hex(r)}${hex(g)}${hex(b)}`;
}

/**
 * The fill colour for a frame, as `#rrggbb`: the same name always gets the
 * same colour, and (in the `kind` scheme) frames of one kind share a hue band.
 */
export function frameColor(name: string, scheme: ColorScheme = 'kind'): string {
  const band = scheme === 'hot' ? BANDS.native : scheme === 'mono' ? MONO : BANDS[frameKind(name)];
  const h = hashName(name);
  // Three independent-ish fractions from different bits of the hash.
  const fHue = (h & 0xffff) / 0xffff;
  const fSat = ((h >>> 16) & 0xff) / 0xff;
  const fLight = (h >>> 24) / 0xff;
  return hslToHex(within(band.hue, fHue), within(band.sat, fSat), within(band.light, fLight));
}
