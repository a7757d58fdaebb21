// Where an nginx build keeps a request's URI, learned from live requests.
// ngx_http_request_t starts with `signature` (NGX_HTTP_MODULE, "HTTP"), and
// somewhere after the build-dependent headers_in/headers_out structs come
// `request_line` and `uri`, both ngx_str_t {size_t len; u_char *data}. For
// a plain request, nginx points uri.data into the request line's own bytes,
// right after the method and a space. So an ngx_str_t that does so, in a
// request whose signature checks, is where the URI is; a few requests that
// agree confirm it. Pure functions over buffers; the reads are a callback.

/** ngx_http_request_t.signature: NGX_HTTP_MODULE, "HTTP" in little-endian. */
export const NGX_HTTP_SIGNATURE = 0x50545448;
/** How much of a request is scanned: the URI lies past headers_in and headers_out, well inside this. */
export const REQUEST_SCAN_BYTES = 4096;
/** Requests that must agree before an offset is trusted. */
export const CONFIRMING_REQUESTS = 3;
/** Longest request line looked at. */
const MAX_REQUEST_LINE = 8192;
/** An HTTP method: upper-case letters (GET, POST, PROPFIND, ...), then a space. */
const METHOD = /^[A-Z]{3,16} /;
/** Below this an address is no heap pointer. */
const MIN_POINTER = 0x10000n;

/** Reads len bytes of the target's memory at addr; null when they are not readable. */
export type ReadMemory = (addr: bigint, len: number) => Buffer | null;

/**
 * Offsets in one request image (its first bytes, from the request's
 * address) that hold an ngx_str_t naming the URI inside the request line:
 * data right after `METHOD `, starting with '/', its bytes free of space and
 * '?' (the path; `unparsed_uri`, later in the struct, also qualifies when
 * the request has no query string). Ascending; empty when the image is no
 * request (signature) or none qualifies (the URI was rewritten or decoded
 * into a buffer of its own).
 */
export function uriOffsetCandidates(image: Buffer, read: ReadMemory): number[] {
  if (image.length < 32 || image.readUInt32LE(0) !== NGX_HTTP_SIGNATURE) return [];
  const found = new Set<number>();
  const lines = new Map<bigint, Buffer | null>();
  for (let at = 8; at + 16 <= image.length; at += 8) {
    const len = image.readBigUInt64LE(at);
    const data = image.readBigUInt64LE(at + 8);
    if (len < 5n || len > BigInt(MAX_REQUEST_LINE) || data < MIN_POINTER) continue;
    let line = lines.get(data);
    if (line === undefined) {
      line = read(data, Number(len));
      lines.set(data, line);
    }
    if (!line || line.length < Number(len)) continue;
    const text = line.subarray(0, Number(len)).toString('latin1');
    const method = METHOD.exec(text);
    if (!method || text[method[0].length] !== '/') continue;
    const uriData = data + BigInt(method[0].length);
    const room = Number(len) - method[0].length;
    for (let u = 8; u + 16 <= image.length; u += 8) {
      if (u === at || image.readBigUInt64LE(u + 8) !== uriData) continue;
      const uriLen = Number(image.readBigUInt64LE(u));
      if (uriLen < 1 || uriLen > room) continue;
      const path = text.slice(method[0].length, method[0].length + uriLen);
      if (!path.includes(' ') && !path.includes('?')) found.add(u);
    }
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * Votes of requests for offsets. The URI's offset is the lowest one that
 * CONFIRMING_REQUESTS requests named: `uri` comes before `unparsed_uri`
 * in every nginx, and a request whose URI nginx copied elsewhere (escaped,
 * `//`, `/./`) names no offset at all or only the later one.
 */
export class UriOffsetVotes {
  private readonly votes = new Map<number, number>();
  /** Requests that were requests (signature) and named an offset. */
  requests = 0;

  add(candidates: readonly number[]): void {
    if (candidates.length === 0) return;
    this.requests++;
    for (const at of candidates) this.votes.set(at, (this.votes.get(at) ?? 0) + 1);
  }

  /** The URI's offset once confirmed, else null. */
  learned(): number | null {
    const confirmed = [...this.votes].filter(([, n]) => n >= CONFIRMING_REQUESTS).map(([at]) => at);
    return confirmed.length > 0 ? Math.min(...confirmed) : null;
  }
}
