/**
 * The deepest nesting of objects and arrays a request body may have. The largest legitimate
 * bodies (a finalize with an artifact of thousands of files and their data blocks, a target
 * with its notifications) stay under 10 levels; a runner event's `data` is free-form, so the
 * limit leaves it ample room. Deeper documents are refused before they are parsed: schema
 * validation, serialization and the catalog's jsonb all recurse over them, and PostgreSQL's
 * stack gives out somewhere in the thousands.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether `text` nests objects and arrays more than `limit` deep, in one pass without
 * recursion (so the check itself cannot overflow). Brackets inside strings do not count.
 */
export function exceedsJsonDepth(text: string, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (inString) {
      if (char === 0x5c /* \ */) index++;
      else if (char === 0x22 /* " */) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      if (++depth > limit) return true;
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}
