/**
 * The shapes of runs as operations return them: what the CLI prints and the API answers. The
 * entry points take them from here, never from the catalog's modules.
 */
export type { Artifact, ArtifactFile } from '../core/artifact.ts';
export type { RunEventRecord as RunEvent } from '../db/runEvents.ts';
export type { LeaseState } from '../db/runLeases.ts';
export type { ClaimedRun, RunKind, RunRecord } from '../db/runRecords.ts';

export { runKinds } from '../core/runState.ts';
