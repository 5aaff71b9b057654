import { isMainThread } from 'node:worker_threads';
import { main } from './main.ts';

// The entry point of dist/executable/backstop.cjs, the single executable's script. Its threads
// (the run's heartbeat) evaluate the same script; off the main thread only they act.
if (isMainThread) void main(process.argv);
