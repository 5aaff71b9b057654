import { z } from 'zod';
import { manifestSchema } from './manifest.ts';

/** Manifest v1 as a JSON Schema document (draft 2020-12). */
export function manifestJsonSchema(): Record<string, unknown> {
  return {
    title: 'Backstop backup manifest, format version 1',
    description: 'manifest.json, written last into each backup prefix. A prefix without it is incomplete.',
    ...z.toJSONSchema(manifestSchema),
  };
}
