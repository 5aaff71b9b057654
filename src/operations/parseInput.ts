import type { z } from 'zod';
import { BackstopError } from '../core/errors.ts';

type RawIssue = Parameters<z.core.$ZodErrorMap>[0];

const typeWords: Record<string, string> = {
  int: 'a whole number',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  null: 'null',
};

/**
 * Plain words for a broken rule, as the end of a sentence that starts with the field's name.
 * A schema's own message (a full sentence, capitalized) wins over these: zod applies a
 * schema-level error before the one given to a parse.
 */
function plainWords(issue: RawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be ${typeWords[issue.expected] ?? issue.expected}`;
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set') return `must have at most ${max} items`;
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'string') return min === '1' ? 'must not be empty' : `must be at least ${min} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set') return `must have at least ${min} item${min === '1' ? '' : 's'}`;
      return issue.inclusive === false ? `must be more than ${min}` : `must be at least ${min}`;
    }
    case 'invalid_format':
      return issue.format === 'regex' ? 'is not in the expected form' : `must be a valid ${issue.format === 'uuid' ? 'UUID' : issue.format}`;
    case 'invalid_value':
      return `must be one of: ${issue.values.map((value) => String(value)).join(', ')}`;
    case 'unrecognized_keys':
      return `has ${issue.keys.length === 1 ? 'an unknown field' : 'unknown fields'}: ${issue.keys.join(', ')}`;
    default:
      return 'is not valid';
  }
}

function sentence(issue: z.core.$ZodIssue): string {
  if (/^[A-Z]/.test(issue.message)) return issue.message.replace(/\.$/, '');
  const field = issue.path.map(String).join('.');
  return `${field || 'The input'} ${issue.message}`;
}

/**
 * Checks what a person or a client asked for against an operation's schema: the one place its
 * rules are written, whether the request came from the CLI or the API. Every broken rule is
 * reported at once, as INVALID_INPUT (exit code 2, HTTP 400). Values are never echoed: some
 * fields hold secrets.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input, { error: plainWords });
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(sentence);
  throw new BackstopError('INVALID_INPUT', problems.length === 1 ? `${problems[0]}.` : `Invalid input:\n  ${problems.join('\n  ')}`);
}
