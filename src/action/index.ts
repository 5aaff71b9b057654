import { isMainThread } from 'node:worker_threads';
import { runAction } from './runAction.ts';

// The entry point of dist/action/index.cjs (action.yml). The run's heartbeat thread loads this
// same bundle; off the main thread only the heartbeat's own module acts.
if (isMainThread) void runAction();
