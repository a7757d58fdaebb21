// Decodes LuaJIT function prototypes (GCproto) and strings (GCstr) from raw
// bytes. Pure: the caller reads the memory.

export interface ProtoHeader {
  chunkname: bigint; // GCstr address
  firstline: number;
  numline: number;
}

export function refSize(offsets: Record<string, number>): number {
  return offsets.gc64 ? 8 : 4;
}

export function decodeProtoHeader(buf: Buffer, offsets: Record<string, number>): ProtoHeader {
  const ref = refSize(offsets);
  const at = offsets.pt_chunkname;
  const chunkname = ref === 8 ? buf.readBigUInt64LE(at) : BigInt(buf.readUInt32LE(at));
  return {
    chunkname,
    firstline: buf.readInt32LE(offsets.pt_firstline),
    numline: buf.readInt32LE(offsets.pt_numline),
  };
}

/** Length of a GCstr from its header bytes. */
export function decodeStringLength(header: Buffer, offsets: Record<string, number>): number {
  return header.readUInt32LE(offsets.str_len);
}

/**
 * How a chunk name is shown: "@/app/work.lua" is a file (drop the "@"),
 * "=content_by_lua(nginx.conf:40)" is a label (drop the "="), anything else
 * is source text: show its first line, shortened.
 */
export function displayChunkName(raw: string): string {
  if (raw.startsWith('@') || raw.startsWith('=')) return raw.slice(1);
  const firstLine = raw.split('\n', 1)[0];
  const short = firstLine.length > 40 ? `${firstLine.slice(0, 37)}...` : firstLine;
  return `[string "${short}"]`;
}

export function luaFrameName(chunk: string, line: number, name?: string): string {
  return name ? `${name} (${chunk}:${line})` : `(${chunk}:${line})`;
}
