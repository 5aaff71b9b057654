import type { z } from 'zod';
import { BackstopError, type FieldProblem } from './errors.ts';

/**
 * Input validation in plain words. Schemas (zod) say what each field must be; this turns what
 * they found into `{field, message}` problems a person can act on ("must be a whole number from
 * 1 to 10", never "expected int, received string"), every one of them at once, and into the one
 * INVALID_INPUT error the CLI and the API both report.
 */

/** A field path as the API names it: `options.encryptTo.0`; the whole input is ''. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

export const typeNames: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  null: 'null',
};

export function sizeWords(origin: string, bound: number | bigint, side: 'least' | 'most'): string {
  const n = Number(bound);
  if (origin === 'string') {
    if (side === 'least' && n === 1) return 'must not be empty';
    return `must be at ${side} ${n} character${n === 1 ? '' : 's'} long`;
  }
  if (origin === 'array' || origin === 'set') {
    if (side === 'least' && n === 1) return 'must list at least one entry';
    return `must list at ${side} ${n} entr${n === 1 ? 'y' : 'ies'}`;
  }
  return `must be at ${side} ${n}`;
}

/**
 * The error map every input schema is parsed with: messages for what a field-specific message
 * does not cover. Field-specific messages (given in the schema) win over these.
 */
export const plainIssueMessage: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${typeNames[issue.expected] ?? issue.expected}`;
    case 'too_small':
      return sizeWords(issue.origin, issue.minimum, 'least');
    case 'too_big':
      return sizeWords(issue.origin, issue.maximum, 'most');
    case 'invalid_value':
      return `must be one of: ${issue.values.map((value) => String(value)).join(', ')}`;
    case 'unrecognized_keys':
      return 'is not a known field';
    case 'invalid_format':
      return 'is not in the expected form';
    case 'invalid_union':
      return 'is not one of the accepted forms';
    default:
      return undefined;
  }
};

/**
 * Every problem a failed parse found, one per field: a field's checks run in the order the
 * schema lists them, plainest first, and a value that fails its shape usually fails the parser
 * behind it too. An unknown field is a problem of its own, named by its path.
 */
export function problemsFromZod(error: z.core.$ZodError): FieldProblem[] {
  const problems = new Map<string, FieldProblem>();
  const add = (field: string, message: string) => {
    if (!problems.has(field)) problems.set(field, { field, message });
  };
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) add(fieldPath([...issue.path, key]), issue.message);
    } else {
      add(fieldPath(issue.path), issue.message);
    }
  }
  return [...problems.values()];
}

/**
 * `options.encryptTo.0: must be …` lines for a message; a problem of the whole input (field '')
 * is said of `subject`.
 */
export function describeProblems(problems: readonly FieldProblem[], name: (field: string) => string = (field) => field, subject = 'The input'): string {
  const lines = problems.map((problem) => (problem.field === '' ? `${subject} ${problem.message}` : `${name(problem.field)}: ${problem.message}`));
  if (lines.length === 1) return `${lines[0]!.replace(/\.$/, '')}.`;
  return `${lines.length} problems: ${lines.map((line) => line.replace(/\.$/, '')).join('; ')}.`;
}

/** The INVALID_INPUT error for these problems (at least one). */
export function invalidInput(problems: readonly FieldProblem[], subject?: string): BackstopError {
  return new BackstopError('INVALID_INPUT', describeProblems(problems, undefined, subject), { fields: problems });
}

/** Parses `input` with `schema`, or throws INVALID_INPUT listing every problem. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, subject?: string): z.output<S> {
  const result = schema.safeParse(input, { error: plainIssueMessage });
  if (!result.success) throw invalidInput(problemsFromZod(result.error), subject);
  return result.data;
}
