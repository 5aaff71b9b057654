import { z } from 'zod';

/** The fencing token a runner got at claim: every later call of that runner names it. */
export const leaseId = z.uuid().describe('The lease id returned by claim.');
