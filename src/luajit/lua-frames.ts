// Turns one sample's Lua frame words (kind + payload, leaf first) and their
// bytecode positions into frame names: `name (chunk:line)`, names from the
// callers' call sites, lines by definition or current position.
import { LuaFrameKind, luaFrameKind, luaFramePayload } from '../native/abi.js';
import { callSiteName } from './call-site-names.js';
import { fastFunctionName } from './offset-tables.js';
import { luaFrameName } from './proto.js';
import type { PrototypeReader } from './prototypes.js';

export type LineMode = 'definition' | 'current';

export interface LuaFramesInput {
  words: bigint[];
  positions: number[];
  /** For compiled code: the leaf's bytecode address from the trace snapshot. */
  leafPc?: bigint | null;
}

export interface LuaFrameNamer {
  reader: PrototypeReader | null;
  lines: LineMode;
}

/**
 * One frame's name, or the address of the C function it is: C functions
 * are named from the ELF files like any native frame, which needs no live
 * process and so can wait until sampling is over.
 */
export type LuaFrameName = string | bigint;

/** Names for the frames, leaf first, same order as input.words. */
export function nameLuaFrames(input: LuaFramesInput, namer: LuaFrameNamer): LuaFrameName[] {
  const { words, positions } = input;
  const { reader } = namer;
  return words.map((word, i) => {
    const kind = luaFrameKind(word);
    const payload = luaFramePayload(word);
    if (kind === LuaFrameKind.Fast) return reader ? fastFunctionName(reader.table, Number(payload)) : `builtin#${payload}`;
    if (kind === LuaFrameKind.C) return payload;
    if (kind !== LuaFrameKind.Lua || !reader) return '[unknown Lua frame]';
    const pt = reader.proto(payload);
    if (!pt) return '(unknown Lua function)';

    let name: string | undefined;
    const callerWord = words[i + 1];
    if (callerWord !== undefined && luaFrameKind(callerWord) === LuaFrameKind.Lua && positions[i + 1] > 0) {
      const caller = reader.proto(luaFramePayload(callerWord));
      if (caller) name = callSiteName(reader, caller, positions[i + 1] - 1)?.name;
    }

    let line = pt.firstline;
    if (namer.lines === 'current') {
      if (i === 0 && input.leafPc) {
        const bcStart = pt.addr + BigInt(reader.table.offsets.pt_size);
        const index = (input.leafPc - bcStart) / 4n;
        if (input.leafPc >= bcStart && index < BigInt(pt.sizebc)) line = reader.line(pt, Number(index));
      } else if (positions[i] > 0) {
        line = reader.line(pt, positions[i] - 1);
      }
    }
    return luaFrameName(pt.chunk, line, name);
  });
}
