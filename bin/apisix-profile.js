#!/usr/bin/env -S node --no-memory-reducer --max-semi-space-size=2
// V8 flags for a quiet profiler (`node bin/apisix-profile.js` works too,
// without them): --no-memory-reducer stops the extra full collections V8
// would run a few seconds into sampling, on the CPUs the target runs on;
// --max-semi-space-size=2 (MB) keeps the young generation small, which
// takes about 25 MB off the peak resident size at no measurable CPU cost.
import { main } from '../dist/cli.js';

main(process.argv);
