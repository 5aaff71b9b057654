/** A CI job's status as its last step reports it (GitHub: `${{ job.status }}`). */
export const jobStatuses = ['success', 'failure', 'cancelled'] as const;
export type JobStatus = (typeof jobStatuses)[number];
