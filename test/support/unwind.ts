// Shared by the .eh_frame tests: the system objects they compare with
// readelf (scripts/setup.sh installs them), and a command runner.
import { execFileSync } from 'node:child_process';

export const SYSTEM_LIBS = [
  '/usr/sbin/nginx',
  '/usr/lib/x86_64-linux-gnu/libc.so.6',
  '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2',
  '/usr/lib/x86_64-linux-gnu/libcrypto.so.3',
];

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}
