// Holds bench/bare-switch.bpf.c's empty sched_switch program attached
// until stdin closes (or SIGINT/SIGTERM): the off-CPU phase's floor. Prints
// "attached" once it is. Usage: node bench/bare-hook.mjs <object.o>
import { openNativeSession } from '../dist/native/addon.js';

const session = openNativeSession(process.argv[2]);
session.load(false);
session.attachTracing('bare_switch');
process.stdout.write('attached\n');
const done = () => {
  session.close();
  process.exit(0);
};
process.on('SIGINT', done);
process.on('SIGTERM', done);
process.stdin.on('end', done);
process.stdin.resume();
