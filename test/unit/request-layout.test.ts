// Learning where a request keeps its URI, from synthetic request images: a
// fake ngx_http_request_t (signature, unrelated words, request_line, uri,
// args, unparsed_uri at build-dependent offsets) and the memory it points to.
import { describe, expect, it } from 'vitest';
import { CONFIRMING_REQUESTS, NGX_HTTP_SIGNATURE, type ReadMemory, UriOffsetVotes, uriOffsetCandidates } from '../../src/gateway/request-layout.js';

const LINE_AT = 0x5555_0000_1000n;

interface FakeRequest {
  line: string;
  /** Offsets of the ngx_str_t fields in the request. */
  requestLine: number;
  uri: number;
  unparsed: number;
  /** The uri's bytes live elsewhere (nginx decoded or rewrote it). */
  uriElsewhere?: string;
  signature?: number;
}

function fake(r: FakeRequest): { image: Buffer; read: ReadMemory } {
  const image = Buffer.alloc(2048);
  image.writeUInt32LE(r.signature ?? NGX_HTTP_SIGNATURE, 0);
  // Noise: small numbers and pointers that mean nothing.
  for (let at = 8; at < image.length; at += 8) image.writeBigUInt64LE(BigInt((at * 7919) % 300), at);
  const method = r.line.indexOf(' ') + 1;
  const target = r.line.slice(method, r.line.indexOf(' ', method));
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  image.writeBigUInt64LE(BigInt(r.line.length), r.requestLine);
  image.writeBigUInt64LE(LINE_AT, r.requestLine + 8);
  const other = 0x7777_0000_0000n;
  image.writeBigUInt64LE(BigInt((r.uriElsewhere ?? path).length), r.uri);
  image.writeBigUInt64LE(r.uriElsewhere ? other : LINE_AT + BigInt(method), r.uri + 8);
  image.writeBigUInt64LE(BigInt(target.length), r.unparsed);
  image.writeBigUInt64LE(LINE_AT + BigInt(method), r.unparsed + 8);
  const memory = new Map<bigint, Buffer>([
    [LINE_AT, Buffer.from(r.line, 'latin1')],
    [other, Buffer.from(r.uriElsewhere ?? '', 'latin1')],
  ]);
  const read: ReadMemory = (addr, len) => {
    const buf = memory.get(addr);
    return buf && buf.length >= len ? buf.subarray(0, len) : null;
  };
  return { image, read };
}

const layout = { requestLine: 968, uri: 984, unparsed: 1032 };

describe('uriOffsetCandidates', () => {
  it('finds uri (and unparsed_uri, equal without a query string)', () => {
    const { image, read } = fake({ ...layout, line: 'GET /api/users HTTP/1.1' });
    expect(uriOffsetCandidates(image, read)).toEqual([984, 1032]);
  });

  it('with a query string only uri qualifies: unparsed_uri holds the "?"', () => {
    const { image, read } = fake({ ...layout, line: 'POST /api/orders?id=7 HTTP/1.1' });
    expect(uriOffsetCandidates(image, read)).toEqual([984]);
  });

  it('finds the fields wherever the build put them', () => {
    const { image, read } = fake({ requestLine: 1200, uri: 1216, unparsed: 1264, line: 'GET /a?b=1 HTTP/1.0' });
    expect(uriOffsetCandidates(image, read)).toEqual([1216]);
  });

  it('is empty for memory that is no request (signature), or a URI nginx copied elsewhere', () => {
    expect(uriOffsetCandidates(fake({ ...layout, line: 'GET /x?y HTTP/1.1', signature: 0x12345678 }).image, () => null)).toEqual([]);
    const { image, read } = fake({ ...layout, line: 'GET /a%20b?c HTTP/1.1', uriElsewhere: '/a b' });
    expect(uriOffsetCandidates(image, read)).toEqual([]);
  });

  it('ignores a request line it cannot read or that is no request line', () => {
    const { image } = fake({ ...layout, line: 'GET /api HTTP/1.1' });
    expect(uriOffsetCandidates(image, () => null)).toEqual([]);
    const bad = fake({ ...layout, line: 'get /api HTTP/1.1' });
    expect(uriOffsetCandidates(bad.image, bad.read)).toEqual([]);
  });
});

describe('UriOffsetVotes', () => {
  it(`needs ${CONFIRMING_REQUESTS} requests, then takes the lowest confirmed offset (uri before unparsed_uri)`, () => {
    const votes = new UriOffsetVotes();
    for (let i = 0; i < CONFIRMING_REQUESTS - 1; i++) votes.add([984, 1032]);
    expect(votes.learned()).toBeNull();
    votes.add([]); // no request: no vote
    expect(votes.learned()).toBeNull();
    votes.add([984, 1032]);
    expect(votes.learned()).toBe(984);
    expect(votes.requests).toBe(CONFIRMING_REQUESTS);
  });

  it('a URI copied elsewhere votes for unparsed_uri alone; uri still wins once confirmed', () => {
    const votes = new UriOffsetVotes();
    votes.add([1032]);
    votes.add([984]);
    votes.add([984, 1032]);
    expect(votes.learned()).toBeNull();
    votes.add([984, 1032]);
    expect(votes.learned()).toBe(984);
  });
});
