import { z } from 'zod';

/** Free-form details (progress, event data), bounded so that no runner can grow a row without limit. */
export function detailsObject(maxFields: number) {
  return z
    .record(z.string(), z.unknown())
    .refine((value) => Object.keys(value).length <= maxFields, `must have at most ${maxFields} fields`)
    .meta({ maxProperties: maxFields });
}
