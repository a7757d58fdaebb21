// Mutation fuzzing of the parsers that read untrusted bytes: ELF files,
// .eh_frame / .eh_frame_hdr, /proc/<pid>/maps text and folded stacks.
//
// Pure engine, shared by bench/fuzz.mjs (the full run, parsers from dist/)
// and test/unit/fuzz-short.test.ts (a short run in CI, parsers from src/):
// the caller passes the parser functions in, so this file imports none.
//
// Every input is derived from (seed, target, index) alone, so any one input
// can be rebuilt and replayed: `node bench/fuzz.mjs --repro <target>:<seed>:<index>`.
//
// A parser may reject an input by throwing the error it documents (a plain
// Error or RangeError it constructs itself, with the message it documents
// where it documents one). Anything else is a failure: a TypeError, a
// ReferenceError, an error raised by Node or V8 rather than by the parser
// (ERR_OUT_OF_RANGE from a Buffer read, "Invalid typed array length",
// "Array buffer allocation failed", "Maximum call stack size exceeded"...), a
// throw from a function that documents none, a thrown non-Error, or a single
// input taking longer than the time limit.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TIME_LIMIT_MS = 1000;

// ---------------------------------------------------------------------------
// Deterministic PRNG: cyrb128 string hash seeding sfc32.

function cyrb128(str) {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  return [(h1 ^ h2 ^ h3 ^ h4) >>> 0, (h2 ^ h1) >>> 0, (h3 ^ h1) >>> 0, (h4 ^ h1) >>> 0];
}

/** A small seeded generator: u32(), int(n) in [0, n), chance(p), pick(array). */
export function makeRng(key) {
  let [a, b, c, d] = cyrb128(String(key));
  const u32 = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) u32();
  const rng = {
    u32,
    int: (n) => (n <= 0 ? 0 : Math.floor((u32() / 4294967296) * n)),
    chance: (p) => u32() / 4294967296 < p,
    pick: (arr) => arr[rng.int(arr.length)],
    /** Small numbers more often than large ones: [0, n). */
    smallInt: (n) => Math.min(n - 1, Math.floor(n ** (u32() / 4294967296)) - 1 + (u32() & 1)),
  };
  return rng;
}

/** The key of input `index` of `target` in a run seeded with `seed`. */
export function inputKey(seed, target, index) {
  return `${target}:${seed}:${index}`;
}

// ---------------------------------------------------------------------------
// Byte mutators. Each takes the rng, a Buffer and the mutation context
// ({ hot: [[start, end)...], donors: Buffer[] }) and returns a new Buffer.

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x03, 0x04, 0x07, 0x08, 0x0f, 0x10, 0x1b, 0x30, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xfe, 0xff];
const INTERESTING_32 = [
  0, 1, 2, 3, 4, 7, 8, 16, 24, 56, 64, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xffff, 0x10000, 0xfffff,
  0x7fffffff, 0x80000000, 0x80000001, 0xfffffff0, 0xfffffffe, 0xffffffff,
];
const INTERESTING_64 = [
  0n, 1n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 0x1fffffffffffffn, 0x20000000000000n, 0x7fffffffffffffffn,
  0x8000000000000000n, 0xfffffffffffffff0n, 0xffffffffffffffffn,
];

function pickOffset(rng, len, ctx) {
  if (len === 0) return 0;
  const hot = ctx.hot;
  if (hot && hot.length > 0 && rng.chance(0.8)) {
    const [a, b] = hot[rng.int(hot.length)];
    const lo = Math.min(a, len - 1);
    const hi = Math.min(b, len);
    if (hi > lo) return lo + rng.int(hi - lo);
  }
  return rng.int(len);
}

function flipBits(rng, buf, ctx) {
  const out = Buffer.from(buf);
  if (out.length === 0) return out;
  const n = 1 + rng.smallInt(16);
  for (let i = 0; i < n; i++) out[pickOffset(rng, out.length, ctx)] ^= 1 << rng.int(8);
  return out;
}

function setBytes(rng, buf, ctx) {
  const out = Buffer.from(buf);
  if (out.length === 0) return out;
  const n = 1 + rng.smallInt(8);
  for (let i = 0; i < n; i++) out[pickOffset(rng, out.length, ctx)] = rng.chance(0.7) ? rng.pick(INTERESTING_8) : rng.int(256);
  return out;
}

/** Length and offset fields: overwrite an aligned 2-, 4- or 8-byte integer. */
function corruptInt(rng, buf, ctx) {
  const out = Buffer.from(buf);
  const width = rng.pick([2, 4, 4, 4, 8, 8]);
  if (out.length < width) return out;
  let off = pickOffset(rng, out.length, ctx);
  if (rng.chance(0.7)) off -= off % width;
  off = Math.min(off, out.length - width);
  const mode = rng.int(6);
  if (width === 8) {
    const old = out.readBigUInt64LE(off);
    let v;
    if (mode === 0) v = rng.pick(INTERESTING_64);
    else if (mode === 1) v = old + BigInt(rng.int(33) - 16);
    else if (mode === 2) v = old * 2n + 1n;
    else if (mode === 3) v = BigInt(out.length + rng.int(9) - 4);
    else if (mode === 4) v = rng.chance(0.5) ? old ^ (1n << BigInt(rng.int(64))) : -BigInt(1 + rng.int(64));
    else v = (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
    out.writeBigUInt64LE(BigInt.asUintN(64, v), off);
  } else if (width === 4) {
    const old = out.readUInt32LE(off);
    let v;
    if (mode === 0) v = rng.pick(INTERESTING_32);
    else if (mode === 1) v = old + rng.int(33) - 16;
    else if (mode === 2) v = old * 2 + 1;
    else if (mode === 3) v = out.length - off + rng.int(17) - 8;
    else if (mode === 4) v = rng.chance(0.5) ? old ^ (1 << rng.int(32)) : -(1 + rng.int(64)); // small negative
    else v = rng.u32();
    out.writeUInt32LE(v >>> 0, off);
  } else {
    const old = out.readUInt16LE(off);
    const v = mode === 0 ? rng.pick(INTERESTING_32) : mode === 1 ? old + rng.int(33) - 16 : mode === 2 ? old * 2 + 1 : rng.u32();
    out.writeUInt16LE(v & 0xffff, off);
  }
  return out;
}

function truncate(rng, buf, ctx) {
  if (buf.length === 0) return Buffer.alloc(0);
  const r = rng.int(4);
  const cut = r === 0 ? rng.int(buf.length) : r === 1 ? pickOffset(rng, buf.length, ctx) : r === 2 ? buf.length - 1 - rng.smallInt(Math.min(buf.length, 64)) : rng.smallInt(Math.min(buf.length, 256));
  return Buffer.from(buf.subarray(0, Math.max(0, cut)));
}

function randomRange(rng, buf, ctx) {
  const out = Buffer.from(buf);
  if (out.length === 0) return out;
  const off = pickOffset(rng, out.length, ctx);
  const n = Math.min(out.length - off, 1 + rng.smallInt(128));
  for (let i = 0; i < n; i++) out[off + i] = rng.int(256);
  return out;
}

/** A chunk of a donor (another seed of the same kind, or the input) overwrites or is inserted. */
function splice(rng, buf, ctx) {
  const donors = ctx.donors && ctx.donors.length > 0 ? ctx.donors : [buf];
  const donor = rng.chance(0.3) ? buf : rng.pick(donors);
  if (donor.length === 0) return Buffer.from(buf);
  const from = pickOffset(rng, donor.length, rng.chance(0.5) ? { hot: ctx.donorHot?.get(donor) } : {});
  const n = Math.min(donor.length - from, 1 + rng.smallInt(512));
  const chunk = donor.subarray(from, from + n);
  const at = buf.length === 0 ? 0 : pickOffset(rng, buf.length, ctx);
  if (rng.chance(0.5)) {
    const out = Buffer.from(buf);
    chunk.copy(out, at, 0, Math.min(n, out.length - at));
    return out;
  }
  return Buffer.concat([buf.subarray(0, at), chunk, buf.subarray(at)]);
}

function deleteRange(rng, buf, ctx) {
  if (buf.length === 0) return Buffer.alloc(0);
  const at = pickOffset(rng, buf.length, ctx);
  const n = 1 + rng.smallInt(Math.min(256, buf.length - at));
  return Buffer.concat([buf.subarray(0, at), buf.subarray(at + n)]);
}

function duplicateRange(rng, buf, ctx) {
  if (buf.length === 0) return Buffer.alloc(0);
  const at = pickOffset(rng, buf.length, ctx);
  const n = Math.min(buf.length - at, 1 + rng.smallInt(256));
  const times = 1 + rng.smallInt(rng.chance(0.1) ? 2000 : 8);
  const parts = [buf.subarray(0, at + n)];
  for (let i = 0; i < times; i++) parts.push(buf.subarray(at, at + n));
  parts.push(buf.subarray(at + n));
  return Buffer.concat(parts);
}

function randomBytes(rng, _buf) {
  const n = rng.smallInt(4096);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

const BYTE_MUTATORS = [
  [flipBits, 5],
  [setBytes, 4],
  [corruptInt, 7],
  [truncate, 2],
  [randomRange, 2],
  [splice, 3],
  [deleteRange, 1],
  [duplicateRange, 1],
];

function weighted(rng, table) {
  let total = 0;
  for (const [, w] of table) total += w;
  let r = rng.int(total);
  for (const [f, w] of table) {
    if (r < w) return f;
    r -= w;
  }
  return table[0][0];
}

/**
 * 1 to 5 stacked mutations (havoc style); 1 in 100 inputs is random bytes,
 * optionally behind the seed's first `keepPrefix` bytes (the ELF magic).
 */
export function mutateBytes(rng, seed, ctx = {}) {
  if (rng.chance(0.01)) {
    const rnd = randomBytes(rng, seed);
    const keep = ctx.keepPrefix ?? 0;
    return keep > 0 ? Buffer.concat([seed.subarray(0, keep), rnd]) : rnd;
  }
  let buf = seed;
  const n = 1 + rng.smallInt(5);
  for (let i = 0; i < n; i++) buf = weighted(rng, BYTE_MUTATORS)(rng, buf, ctx);
  return buf === seed ? Buffer.from(seed) : buf;
}

// ---------------------------------------------------------------------------
// Text mutators (maps, folded): byte mutations of the encoded text plus
// line and token operations.

const TOKENS = [
  '', '0', '-', '-1', '+1', '00', '0x10', '1e309', 'NaN', 'Infinity', '9007199254740993', '18446744073709551616',
  'f'.repeat(17), 'f'.repeat(40), '9'.repeat(400), 'f'.repeat(5000), ' ', '\t', '\r', '\r\n', '\n', '\v', '\f', '\0',
  '\u00a0', '\u2028', '\u2029', '\ufeff', '\ud800', '\udfff', '\u00e9', '\u{1f525}', ';', ';;', ' ;', '; ', ':', '::',
  '--', 'rwxp', 'r-xp', '----', 'rwxs', 'rw-S', '(deleted)', ' (deleted)', '[heap]', '[vsyscall]', 'ffffffffff600000',
  '00:00', 'fe:00', 'ffff:ffff', '0 1', '1 0', ' 1', '1 ', '[k]', '_[k]', '(a.lua:1)', '"', "'", '\\', '%', '%s', '$',
];

const LONG = [
  () => ' '.repeat(50_000),
  () => '\t '.repeat(30_000),
  () => ';'.repeat(50_000),
  () => '1 '.repeat(30_000),
  () => 'a'.repeat(100_000),
  () => 'f'.repeat(100_000),
  () => '0'.repeat(50_000) + 'x',
  () => ' 1'.repeat(30_000) + 'x',
  () => 'a; '.repeat(30_000),
  () => '\r'.repeat(20_000),
  () => '\n'.repeat(20_000),
  () => '\r\n'.repeat(20_000),
];

function textLines(text) {
  return text.split('\n');
}

function mutateLines(rng, text, donors) {
  const lines = textLines(text);
  const op = rng.int(6);
  const i = rng.int(lines.length);
  if (op === 0 && lines.length > 1) lines.splice(i, 1 + rng.smallInt(Math.min(8, lines.length - i)));
  else if (op === 1) lines.splice(i, 0, ...Array(1 + rng.smallInt(rng.chance(0.05) ? 5000 : 8)).fill(lines[i]));
  else if (op === 2) {
    const j = rng.int(lines.length);
    [lines[i], lines[j]] = [lines[j], lines[i]];
  } else if (op === 3) {
    const donor = textLines(rng.pick(donors));
    lines.splice(i, 0, donor[rng.int(donor.length)]);
  } else if (op === 4) lines[i] = lines[i].slice(0, rng.int(lines[i].length + 1));
  else {
    const donor = textLines(rng.pick(donors));
    const d = donor[rng.int(donor.length)];
    lines[i] = lines[i].slice(0, rng.int(lines[i].length + 1)) + d.slice(rng.int(d.length + 1));
  }
  return lines.join(rng.chance(0.1) ? '\r\n' : '\n');
}

/** Replaces one token (a run between separators) or inserts one. */
function mutateToken(rng, text) {
  if (text.length === 0) return rng.pick(TOKENS);
  const sepRe = /[\s;:\-()[\]]/;
  let at = rng.int(text.length);
  let end = at;
  while (end < text.length && !sepRe.test(text[end])) end++;
  while (at > 0 && !sepRe.test(text[at - 1])) at--;
  const token = rng.chance(0.04) ? rng.pick(LONG)() : rng.pick(TOKENS);
  if (rng.chance(0.3)) return text.slice(0, at) + token + text.slice(at); // insert
  return text.slice(0, at) + token + text.slice(end);
}

export function mutateText(rng, seed, donors) {
  let text = seed;
  const n = 1 + rng.smallInt(5);
  for (let k = 0; k < n; k++) {
    const r = rng.int(10);
    if (r < 3) text = mutateToken(rng, text);
    else if (r < 6) text = mutateLines(rng, text, donors);
    else {
      const enc = rng.chance(0.5) ? 'latin1' : 'utf8';
      text = mutateBytes(rng, Buffer.from(text, enc), { donors: donors.map((d) => Buffer.from(d, enc)) }).toString(enc);
    }
  }
  if (rng.chance(0.02)) text = '\ufeff' + text;
  return text;
}

// ---------------------------------------------------------------------------
// Seeds.

/** ELF files present on a Debian machine with the fixture packages. */
export const ELF_SEED_FILES = [
  '/usr/sbin/nginx',
  '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2',
  '/usr/lib/nginx/modules/ngx_http_lua_module.so',
  '/usr/lib/nginx/modules/ndk_http_module.so',
];

function u16(b, o) {
  return o + 2 <= b.length ? b.readUInt16LE(o) : 0;
}
function u32(b, o) {
  return o + 4 <= b.length ? b.readUInt32LE(o) : 0;
}
function u64n(b, o) {
  return o + 8 <= b.length ? Number(b.readBigUInt64LE(o)) : 0;
}

/** Byte ranges of an ELF64 file that hold structure (headers, tables, symbols, notes). */
export function elfHotRanges(buf) {
  const hot = [[0, 64]];
  const phoff = u64n(buf, 32);
  const shoff = u64n(buf, 40);
  const phentsize = u16(buf, 54);
  const phnum = u16(buf, 56);
  const shentsize = u16(buf, 58);
  const shnum = u16(buf, 60);
  if (phoff > 0 && phoff < buf.length) hot.push([phoff, Math.min(buf.length, phoff + phnum * phentsize)]);
  if (shoff > 0 && shoff < buf.length) {
    hot.push([shoff, Math.min(buf.length, shoff + shnum * shentsize)]);
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * shentsize;
      const type = u32(buf, h + 4);
      const off = u64n(buf, h + 24);
      const size = u64n(buf, h + 32);
      // symtab, strtab, dynsym, note, dynamic
      if ([2, 3, 11, 7, 6].includes(type) && off < buf.length && size > 0) {
        hot.push([off, Math.min(buf.length, off + Math.min(size, 1 << 16))]);
      }
    }
  }
  return hot;
}

/** Offsets at which the entries of an .eh_frame section start. */
export function ehFrameEntryOffsets(data) {
  const offs = [];
  let off = 0;
  while (off + 4 <= data.length) {
    offs.push(off);
    let len = data.readUInt32LE(off);
    let hdr = 4;
    if (len === 0) {
      off += 4;
      continue;
    }
    if (len === 0xffffffff) {
      if (off + 12 > data.length) break;
      len = Number(data.readBigUInt64LE(off + 4));
      hdr = 12;
    }
    off += hdr + len;
  }
  return offs;
}

function buildElfFixtures(repoRoot, log) {
  const out = [];
  const sources = [
    ['libcfi.so', ['-O2', '-fPIC', '-shared', join(repoRoot, 'fixtures/unwind/cfi_asm.c')]],
    ['libsym.so', ['-O1', '-g0', '-fPIC', '-shared', join(repoRoot, 'fixtures/elf/symlib.c')]],
  ];
  let dir;
  try {
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-fuzz-'));
    for (const [name, args] of sources) {
      if (!existsSync(args[args.length - 1])) continue;
      const file = join(dir, name);
      execFileSync('gcc', [...args, '-o', file], { stdio: 'ignore' });
      out.push({ name: `fixtures:${name}`, buf: readFileSync(file) });
    }
  } catch (e) {
    log?.(`fuzz: could not build the gcc fixtures (${e.message.split('\n')[0]}); using the system files only`);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * Loads the seeds of every target. `api.parseElf` is used on the (valid)
 * seed files to cut out their .eh_frame / .eh_frame_hdr sections.
 */
export function loadSeeds(api, { repoRoot, log } = {}) {
  const elf = [];
  for (const path of ELF_SEED_FILES) {
    if (!existsSync(path)) continue;
    elf.push({ name: path, buf: readFileSync(realpathSync(path)) });
  }
  if (repoRoot) elf.push(...buildElfFixtures(repoRoot, log));

  const ehFrame = [];
  const ehFrameHdr = [];
  for (const s of elf) {
    s.hot = elfHotRanges(s.buf);
    const info = api.parseElf(s.buf);
    const eh = info.sectionsByName.get('.eh_frame');
    if (eh && eh.data.length > 0) {
      const data = Buffer.from(eh.data);
      ehFrame.push({ name: `${s.name}:.eh_frame`, buf: data, vaddr: eh.addr, entries: ehFrameEntryOffsets(data) });
    }
    const hdr = info.sectionsByName.get('.eh_frame_hdr');
    if (hdr && hdr.data.length > 0) ehFrameHdr.push({ name: `${s.name}:.eh_frame_hdr`, buf: Buffer.from(hdr.data), vaddr: hdr.addr });
  }

  const textFiles = (dir, ext) => {
    const out = [];
    if (!repoRoot) return out;
    const full = join(repoRoot, dir);
    if (!existsSync(full)) return out;
    for (const f of readdirSyncSorted(full)) if (f.endsWith(ext)) out.push({ name: `${dir}/${f}`, text: readFileSync(join(full, f), 'utf8') });
    return out;
  };
  const maps = textFiles('fixtures/maps', '.maps');
  const folded = textFiles('fixtures/report', '.folded');
  return { elf, ehFrame, ehFrameHdr, maps, folded };
}

function readdirSyncSorted(dir) {
  return readdirSync(dir).sort();
}

// ---------------------------------------------------------------------------
// Error classification.

const V8_INTERNAL =
  /Maximum call stack size exceeded|Invalid (typed )?array length|Array buffer allocation failed|Invalid string length|cannot be converted to a BigInt|Cannot (read|set) propert|is not (a function|iterable|defined|a constructor)|Invalid count value|Invalid time value|out of memory|Division by zero|Offset is outside the bounds|Start offset .* is outside the bounds|Invalid DataView/i;

/**
 * Why `err` is not an error the parser raised on purpose, or null if it is.
 * `allowed` lists the constructors it documents; `message` (optional) the
 * message pattern it documents.
 */
export function undocumentedReason(err, allowed, message) {
  if (!(err instanceof Error)) return `threw a non-Error (${typeof err})`;
  if (typeof err.code === 'string' && err.code.startsWith('ERR_')) return `Node ${err.name} ${err.code}`;
  if (V8_INTERNAL.test(err.message)) return `V8 ${err.name}`;
  if (!allowed.some((C) => err.constructor === C)) return `undocumented ${err.name}`;
  if (message && !message.test(err.message)) return `${err.name} with an undocumented message`;
  return null;
}

/** Error message with numbers and quoted text blanked, to group failures. */
export function signature(reason, err, where) {
  const msg = err instanceof Error ? err.message : String(err);
  const norm = msg
    .replace(/"[^"]*"/g, '"…"')
    .replace(/0x[0-9a-f]+/gi, 'N')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
  const frame = err instanceof Error ? topFrame(err) : '';
  return `${where}: ${reason}: ${norm}${frame ? ` @ ${frame}` : ''}`;
}

function topFrame(err) {
  const lines = String(err.stack ?? '').split('\n').slice(1);
  const line = lines.find((l) => !l.includes('node:internal')) ?? lines[0] ?? '';
  const m = /\(?([^()\s]+:\d+):\d+\)?\s*$/.exec(line.trim());
  if (!m) return '';
  return m[1].replace(/^.*\/(src|dist|node_modules)\//, '$1/').replace(/^file:\/\//, '');
}

// ---------------------------------------------------------------------------
// Targets.

/**
 * One target per parser family. `api` holds the parser functions:
 * parseElf, readSymbols, parseEhFrame, parseEhFrameHdr, compileEhFrame,
 * lookupFdeAddress, parseProcMaps, parseFolded.
 *
 * A target's `make(rng)` builds one input; `run(input)` feeds it to the
 * parsers and returns { steps } or { failure: { where, reason, err } }.
 */
export function buildTargets(api, seeds) {
  const elfDonors = seeds.elf.map((s) => s.buf);
  const donorHot = new Map(seeds.elf.map((s) => [s.buf, s.hot]));
  const ehDonors = seeds.ehFrame.map((s) => s.buf);
  const hdrDonors = seeds.ehFrameHdr.map((s) => s.buf);
  const mapsDonors = seeds.maps.map((s) => s.text);
  const foldedDonors = seeds.folded.map((s) => s.text);

  /** Runs `fn`; a throw is a failure unless `allowed` documents it. */
  function step(where, fn, allowed, message) {
    try {
      return { value: fn() };
    } catch (err) {
      const reason = allowed ? undocumentedReason(err, allowed, message) : `${where} documents no throw (${err instanceof Error ? err.name : typeof err})`;
      if (reason === null) return { rejected: true };
      return { failure: { where, reason, err } };
    }
  }

  const targets = {
    elf: {
      describe: 'parseElf, then readSymbols on what it returns',
      seeds: seeds.elf.map((s) => s.name),
      make(rng) {
        // Small files more often: the large ones are slow to copy and parse.
        const s = rng.chance(0.5) ? seeds.elf[seeds.elf.length - 1 - rng.int(Math.min(3, seeds.elf.length))] : rng.pick(seeds.elf);
        return { seed: s.name, bytes: mutateBytes(rng, s.buf, { hot: s.hot, donors: elfDonors, donorHot, keepPrefix: 16 }) };
      },
      run(input) {
        const p = step('parseElf', () => api.parseElf(input.bytes), [Error, RangeError]);
        if (p.failure || p.rejected) return p;
        const s = step('readSymbols', () => api.readSymbols(p.value, input.bytes));
        return s;
      },
    },
    ehFrame: {
      describe: 'parseEhFrame and compileEhFrame (both document errors in their result, no throw)',
      seeds: seeds.ehFrame.map((s) => s.name),
      make(rng) {
        const s = rng.pick(seeds.ehFrame);
        // A window of whole entries keeps inputs small: a prefix (its CIEs
        // included) or a run of entries from the middle (FDEs may then point
        // at CIEs outside it). 1 in 50 inputs is the whole section.
        let start = 0;
        let end = s.buf.length;
        if (!rng.chance(0.02) && s.entries.length > 2) {
          const count = 1 + rng.smallInt(Math.min(64, s.entries.length));
          const first = rng.chance(0.5) ? 0 : rng.int(s.entries.length - 1);
          start = s.entries[first];
          end = s.entries[first + count] ?? s.buf.length;
        }
        const window = s.buf.subarray(start, end);
        return { seed: `${s.name}[0x${start.toString(16)}..0x${end.toString(16)}]`, bytes: mutateBytes(rng, window, { donors: ehDonors }), vaddr: s.vaddr + BigInt(start) };
      },
      run(input) {
        const a = step('parseEhFrame', () => api.parseEhFrame(input.bytes, input.vaddr));
        if (a.failure) return a;
        return step('compileEhFrame', () => api.compileEhFrame(input.bytes, input.vaddr));
      },
    },
    ehFrameHdr: {
      describe: 'parseEhFrameHdr (throws on a malformed header), then lookupFdeAddress',
      seeds: seeds.ehFrameHdr.map((s) => s.name),
      make(rng) {
        const s = rng.pick(seeds.ehFrameHdr);
        return { seed: s.name, bytes: mutateBytes(rng, s.buf, { hot: [[0, 16]], donors: hdrDonors }), vaddr: s.vaddr, pc: s.vaddr + BigInt(rng.int(1 << 20)) };
      },
      run(input) {
        const h = step('parseEhFrameHdr', () => api.parseEhFrameHdr(input.bytes, input.vaddr), [Error, RangeError]);
        if (h.failure || h.rejected) return h;
        return step('lookupFdeAddress', () => api.lookupFdeAddress(h.value, input.pc));
      },
    },
    procMaps: {
      describe: 'parseProcMaps (throws Error "proc maps: cannot parse line N")',
      seeds: seeds.maps.map((s) => s.name),
      make(rng) {
        const s = rng.pick(seeds.maps);
        return { seed: s.name, text: mutateText(rng, s.text, mapsDonors) };
      },
      run(input) {
        return step('parseProcMaps', () => api.parseProcMaps(input.text), [Error], /^proc maps: cannot parse line \d+: /);
      },
    },
    folded: {
      describe: 'parseFolded (throws Error "line N: expected \\"frames count\\"")',
      seeds: seeds.folded.map((s) => s.name),
      make(rng) {
        const s = rng.pick(seeds.folded);
        return { seed: s.name, text: mutateText(rng, s.text, foldedDonors) };
      },
      run(input) {
        return step('parseFolded', () => api.parseFolded(input.text), [Error], /^line \d+: expected "frames count", got /);
      },
    },
  };
  for (const [name, t] of Object.entries(targets)) {
    if (t.seeds.length === 0) throw new Error(`fuzz: no seeds for target ${name}`);
  }
  return targets;
}

export const TARGET_NAMES = ['elf', 'ehFrame', 'ehFrameHdr', 'procMaps', 'folded'];

/**
 * Runs inputs [from, to) of one target. Returns counts and failures
 * (grouped by signature, the first input of each kept for reproduction).
 * `onProgress(index)` is called before each input.
 */
export function fuzzTarget(target, name, { seed, from = 0, to, onProgress, timeLimitMs = TIME_LIMIT_MS, maxExamples = 3 }) {
  const counts = { inputs: 0, accepted: 0, rejected: 0, failed: 0, slow: 0, bytes: 0 };
  const failures = new Map();
  let slowest = { ms: 0, key: '' };
  const record = (sig, entry) => {
    const f = failures.get(sig);
    if (f) {
      f.count++;
      if (f.examples.length < maxExamples) f.examples.push(entry.key);
    } else failures.set(sig, { signature: sig, count: 1, examples: [entry.key], ...entry });
  };
  for (let i = from; i < to; i++) {
    onProgress?.(i);
    const key = inputKey(seed, name, i);
    const input = target.make(makeRng(key));
    counts.inputs++;
    counts.bytes += input.bytes ? input.bytes.length : input.text.length;
    const t0 = performance.now();
    const res = target.run(input);
    const ms = performance.now() - t0;
    if (ms > slowest.ms) slowest = { ms, key };
    if (ms > timeLimitMs) {
      // Re-run once: a GC pause or a busy machine is not a parser bug.
      const t1 = performance.now();
      target.run(input);
      const again = performance.now() - t1;
      if (again > timeLimitMs) {
        counts.slow++;
        record(`${name}: slow input (> ${timeLimitMs} ms)`, { key, seedFile: input.seed, ms: Math.round(Math.min(ms, again)) });
      }
    }
    if (res.failure) {
      counts.failed++;
      const { where, reason, err } = res.failure;
      record(signature(reason, err, where), {
        key,
        seedFile: input.seed,
        where,
        reason,
        message: err instanceof Error ? err.message.slice(0, 300) : String(err),
        stack: err instanceof Error ? String(err.stack).split('\n').slice(0, 8).join('\n') : '',
      });
    } else if (res.rejected) counts.rejected++;
    else counts.accepted++;
  }
  return { counts, failures: [...failures.values()], slowest };
}
