import type { ErrorObject } from 'ajv';
import type { FieldProblem } from '../core/errors.ts';
import { sizeWords, typeNames } from '../core/inputProblems.ts';
import { TARGET_NAME, TARGET_NAME_RULE } from '../core/targetName.ts';

/**
 * Ajv's findings on a query string, path parameters, headers or a body without a zod schema,
 * in the plain words the zod-validated bodies use (src/core/inputProblems.ts): a field path
 * and what the value must be, never "body/options/encryptTo/0 must match pattern".
 */

/** What a pattern means, for the patterns whose meaning a person cannot read off the pattern. */
const patternMeanings = new Map<string, string>([
  [TARGET_NAME.source, TARGET_NAME_RULE],
  ['^[A-Za-z0-9_-]+$', 'must be letters, digits, "_" or "-"'],
  ['^[0-9]{1,15}$', 'must be a whole number'],
]);

const formatMeanings: Record<string, string> = {
  uuid: 'must be a UUID, e.g. 3f1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c',
  'date-time': 'must be a date and time (ISO 8601, e.g. 2024-05-01T03:00:00Z)',
  uri: 'must be a URL',
};

function typeWords(type: unknown): string {
  const types = (Array.isArray(type) ? type : String(type).split(',')).map((name) => typeNames[name === 'integer' ? 'int' : name] ?? name);
  return `must be ${types.join(' or ')}`;
}

/** `/options/encryptTo/0` → `options.encryptTo.0` (JSON Pointer escapes undone). */
function pointerToField(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .join('.');
}

const join = (base: string, key: string) => (base === '' ? key : `${base}.${key}`);

function problemOf(error: ErrorObject, part: string): FieldProblem | null {
  const field = pointerToField(error.instancePath);
  // biome-ignore lint/suspicious/noExplicitAny: Ajv types params per keyword only loosely; each case reads the fields its keyword defines
  const params = error.params as Record<string, any>;
  switch (error.keyword) {
    case 'required':
      return { field: join(field, params.missingProperty), message: 'is required' };
    case 'additionalProperties':
      return { field: join(field, params.additionalProperty), message: part === 'querystring' ? 'is not a known query parameter' : 'is not a known field' };
    case 'type':
      return { field, message: typeWords(params.type) };
    case 'enum':
      return { field, message: `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'const':
      return { field, message: `must be ${String(params.allowedValue)}` };
    case 'pattern':
      return { field, message: patternMeanings.get(params.pattern) ?? 'is not in the expected form' };
    case 'format':
      return { field, message: formatMeanings[params.format] ?? `must be a ${params.format}` };
    case 'minimum':
    case 'exclusiveMinimum':
      return { field, message: `must be ${error.keyword === 'minimum' ? 'at least' : 'more than'} ${params.limit}` };
    case 'maximum':
    case 'exclusiveMaximum':
      return { field, message: `must be ${error.keyword === 'maximum' ? 'at most' : 'less than'} ${params.limit}` };
    case 'minLength':
      return { field, message: sizeWords('string', params.limit, 'least') };
    case 'maxLength':
      return { field, message: sizeWords('string', params.limit, 'most') };
    case 'minItems':
      return { field, message: sizeWords('array', params.limit, 'least') };
    case 'maxItems':
      return { field, message: sizeWords('array', params.limit, 'most') };
    case 'uniqueItems':
      return { field, message: 'must not list the same entry twice' };
    case 'minProperties':
      return { field, message: params.limit === 1 ? 'must give at least one field' : `must give at least ${params.limit} fields` };
    case 'maxProperties':
      return { field, message: `must have at most ${params.limit} fields` };
    // A union's own error adds nothing to its branches' errors.
    case 'anyOf':
    case 'oneOf':
      return null;
    default:
      return { field, message: error.message ?? 'is not valid' };
  }
}

/**
 * One problem per field: the first found, except that the type errors of a union's branches
 * (`anyOf: [object, null]`) are said together ("must be an object or null").
 */
export function problemsFromAjv(errors: readonly ErrorObject[], part: string): FieldProblem[] {
  const problems = new Map<string, FieldProblem>();
  const types = new Map<string, Set<string>>();
  for (const error of errors) {
    const problem = problemOf(error, part);
    if (!problem) continue;
    if (error.keyword === 'type') {
      const seen = types.get(problem.field);
      if (problems.has(problem.field) && !seen) continue;
      const all = seen ?? new Set<string>();
      for (const type of String((error.params as { type: unknown }).type).split(',')) all.add(type);
      types.set(problem.field, all);
      problems.set(problem.field, { field: problem.field, message: typeWords([...all]) });
      continue;
    }
    if (!problems.has(problem.field)) problems.set(problem.field, problem);
  }
  if (problems.size === 0 && errors.length > 0) problems.set(pointerToField(errors[0]!.instancePath), { field: pointerToField(errors[0]!.instancePath), message: 'is not valid' });
  return [...problems.values()];
}

/** How a request part is named when the whole of it is at fault. */
export function partSubject(part: string): string {
  return part === 'body' ? 'The request body' : part === 'querystring' ? 'The query string' : part === 'params' ? 'The path' : 'The request headers';
}
