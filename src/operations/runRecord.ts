/**
 * The shapes of runs as operations return them: what the CLI prints and the API answers. The
 * entry points take them from here, never from the catalog's modules.
 */
export type { Artifact, ArtifactFile, ClaimedRun, LeaseState, RunEvent, RunKind, RunRecord } from '../db/runs.ts';

export const runKinds = ['backup', 'verify'] as const;
