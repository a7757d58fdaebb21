// Names a Lua function the way LuaJIT's own debug info does: from the call
// site in its caller. The CALL instruction's base slot is traced back to
// the instruction that loaded it (a global, a field or method lookup, an
// upvalue) or to the local variable it is. Pure over a PrototypeReader.
import type { Prototype, PrototypeReader } from './prototypes.js';

export type NameKind = 'global' | 'local' | 'method' | 'field' | 'upvalue' | 'metamethod';

export interface CallSiteName {
  kind: NameKind;
  name: string;
}

const op = (ins: number) => ins & 0xff;
const bcA = (ins: number) => (ins >>> 8) & 0xff;
const bcB = (ins: number) => ins >>> 24;
const bcC = (ins: number) => (ins >>> 16) & 0xff;
const bcD = (ins: number) => ins >>> 16;

// Built-in names of the hidden locals of for loops (VARNAME_* 1..6).
const INTERNAL_VARNAMES = ['(for index)', '(for limit)', '(for step)', '(for generator)', '(for state)', '(for control)'];

/** Reads one ULEB128 from buf at pos. */
function uleb(buf: Buffer, pos: { at: number }): number | null {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos.at >= buf.length || shift > 28) return null;
    const b = buf[pos.at++];
    value |= (b & 0x7f) << shift;
    if (b < 0x80) return value >>> 0;
    shift += 7;
  }
}

/** Name of the local variable in `slot` that is live at bytecode pc. */
export function localName(reader: PrototypeReader, pt: Prototype, pc: number, slot: number): string | null {
  const info = reader.debugBytes(pt.varinfo);
  if (!info) return null;
  const pos = { at: 0 };
  let lastpc = 0;
  for (;;) {
    if (pos.at >= info.length) return null;
    const vn = info[pos.at];
    let name: string;
    if (vn < INTERNAL_VARNAMES.length + 1) {
      if (vn === 0) return null; // end of varinfo
      name = INTERNAL_VARNAMES[vn - 1];
      pos.at += 1;
    } else {
      const end = info.indexOf(0, pos.at);
      if (end < 0) return null;
      name = info.toString('utf8', pos.at, end);
      pos.at = end + 1;
    }
    const start = uleb(info, pos);
    if (start === null) return null;
    lastpc += start;
    if (lastpc > pc) return null;
    const len = uleb(info, pos);
    if (len === null) return null;
    if (pc < lastpc + len) {
      if (slot === 0) return name;
      slot--;
    }
  }
}

/** Name of upvalue number idx. */
export function upvalueName(reader: PrototypeReader, pt: Prototype, idx: number): string | null {
  const info = reader.debugBytes(pt.uvinfo);
  if (!info) return null;
  let at = 0;
  for (let i = 0; i < idx; i++) {
    const end = info.indexOf(0, at);
    if (end < 0) return null;
    at = end + 1;
  }
  const end = info.indexOf(0, at);
  return end < 0 ? null : info.toString('utf8', at, end);
}

/**
 * What the value in `slot` is called at instruction index pc of pt: the
 * backwards scan that LuaJIT's debug library does, bounded in depth.
 */
export function slotName(reader: PrototypeReader, pt: Prototype, pc: number, slot: number, depth = 0): CallSiteName | null {
  const bytecodes = reader.table.bytecodes;
  const fr2 = reader.table.offsets.fr2;
  for (let restarts = 0; restarts < 64; restarts++) {
    const local = localName(reader, pt, pc, slot);
    if (local !== null) return { kind: 'local', name: local };
    let moved = false;
    for (let i = pc - 1; i > 0; i--) {
      const ins = pt.bc[i];
      const def = bytecodes[op(ins)];
      if (!def) return null;
      const [opname, amode] = def;
      const ra = bcA(ins);
      if (amode === 'base') {
        if (slot >= ra && (opname !== 'KNIL' || slot <= bcD(ins))) return null;
      } else if (amode === 'dst' && ra === slot) {
        switch (opname) {
          case 'MOV':
            slot = bcD(ins);
            pc = i;
            moved = true;
            break;
          case 'GGET': {
            const name = reader.constantString(pt, -(bcD(ins) + 1));
            return name === null ? null : { kind: 'global', name };
          }
          case 'TGETS': {
            const name = reader.constantString(pt, -(bcC(ins) + 1));
            if (name === null) return null;
            const prev = pt.bc[i - 1];
            const isMethod = i > 1 && bytecodes[op(prev)]?.[0] === 'MOV' && bcA(prev) === ra + 1 + fr2 && bcD(prev) === bcB(ins);
            // The table's own name, for "ngx.say" and "self:foo".
            const owner = depth < 2 ? slotName(reader, pt, i, bcB(ins), depth + 1) : null;
            const prefix = owner && owner.kind !== 'metamethod' ? owner.name : null;
            if (isMethod) return { kind: 'method', name: prefix ? `${prefix}:${name}` : name };
            return { kind: 'field', name: prefix ? `${prefix}.${name}` : name };
          }
          case 'UGET': {
            const name = upvalueName(reader, pt, bcD(ins));
            return name === null ? null : { kind: 'upvalue', name };
          }
          default:
            return null;
        }
        if (moved) break;
      }
    }
    if (!moved) return null;
  }
  return null;
}

/**
 * The name the caller gives the function it is calling at instruction
 * index callPc (the instruction before the return position).
 */
export function callSiteName(reader: PrototypeReader, caller: Prototype, callPc: number): CallSiteName | null {
  if (callPc <= 0 || callPc >= caller.bc.length) return null;
  const ins = caller.bc[callPc];
  const def = reader.table.bytecodes[op(ins)];
  if (!def) return null;
  const [opname, , mm] = def;
  if (mm === 'call') {
    const slot = opname === 'ITERC' ? bcA(ins) - 3 : bcA(ins);
    return slotName(reader, caller, callPc, slot);
  }
  if (mm !== '___') return { kind: 'metamethod', name: `__${mm}` };
  return null;
}
