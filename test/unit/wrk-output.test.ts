import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWrkOutput } from '../../src/load/wrk-output.js';

const captured = (name: string) => readFileSync(join(import.meta.dirname, '../../fixtures/wrk', name), 'utf8');

describe('parseWrkOutput on captured wrk and wrk2 output', () => {
  it('reads the requests line of a plain run', () => {
    expect(parseWrkOutput(captured('wrk-basic.txt'))).toEqual({ requests: 1460, seconds: 2, non2xx: 0, socketErrors: 0 });
  });

  it('skips the latency distribution of --latency', () => {
    expect(parseWrkOutput(captured('wrk-latency.txt'))).toEqual({ requests: 1582, seconds: 2, non2xx: 0, socketErrors: 0 });
  });

  it('counts non-2xx responses and socket errors', () => {
    expect(parseWrkOutput(captured('wrk-non2xx.txt'))).toEqual({ requests: 14614, seconds: 1, non2xx: 14614, socketErrors: 0 });
    expect(parseWrkOutput(captured('wrk-socket-errors.txt'))).toEqual({ requests: 945, seconds: 3, non2xx: 0, socketErrors: 4 + 69856 });
  });

  it('reads a run SIGINT stopped early over the time it ran', () => {
    expect(parseWrkOutput(captured('wrk-sigint.txt'))).toEqual({ requests: 1854, seconds: 2.1, non2xx: 0, socketErrors: 0 });
  });

  it('reads wrk2 past its HdrHistogram spectrum', () => {
    expect(parseWrkOutput(captured('wrk2-latency.txt'))).toEqual({ requests: 9993, seconds: 10, non2xx: 12, socketErrors: 0 });
  });

  it('finds nothing in output without a report', () => {
    expect(parseWrkOutput(captured('wrk-refused.stderr.txt'))).toBeNull();
    expect(parseWrkOutput('')).toBeNull();
    expect(parseWrkOutput('Running 10s test @ http://127.0.0.1:9080/\n  2 threads and 8 connections\n')).toBeNull();
  });

  it('converts every time unit wrk prints, and takes the last report', () => {
    const line = (n: number, t: string) => `  ${n} requests in ${t}, 1.00MB read\n`;
    expect(parseWrkOutput(line(10, '950.00ms'))!.seconds).toBeCloseTo(0.95, 9);
    expect(parseWrkOutput(line(10, '800.00us'))!.seconds).toBeCloseTo(0.0008, 9);
    expect(parseWrkOutput(line(10, '1.50m'))!.seconds).toBeCloseTo(90, 9);
    expect(parseWrkOutput(line(10, '1.00h'))!.seconds).toBe(3600);
    expect(parseWrkOutput(`${line(5, '1.00s')}Requests/sec: 5\n${line(7, '2.00s')}done\r\n`)).toEqual({ requests: 7, seconds: 2, non2xx: 0, socketErrors: 0 });
    // Error lines belong to the report they follow.
    expect(parseWrkOutput(`${line(5, '1.00s')}  Non-2xx or 3xx responses: 5\n${line(7, '2.00s')}`)!.non2xx).toBe(0);
  });
});
