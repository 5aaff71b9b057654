import type { AuditActor } from '../core/auditActor.ts';
import { auditOutcomeOf, type AuditAction, type AuditDetails, type AuditEntry } from '../core/auditEntry.ts';
import { describeError } from '../core/errors.ts';
import { insertAuditEntry } from '../db/auditLog.ts';
import type { Queryable } from '../db/pool.ts';

export type { AuditActor } from '../core/auditActor.ts';

export interface AuditedAction<T> {
  action: AuditAction;
  /** What it acts on, as known before it runs: a target name, a run id, a token id. */
  subject: string | null;
  /** Facts known before it runs (never secret values). */
  details?: AuditDetails;
  /** Facts learnt from its result: the run it made, the fields it changed. */
  detailsOf?: (result: T) => AuditDetails;
  /** The subject once known from the result, when it differs (a token created gets its id). */
  subjectOf?: (result: T) => string | null;
}

/** How much of a subject an entry keeps: names come from requests not yet validated. */
const SUBJECT_CHARS = 200;

/** A subject as a request gives it, before validation: its text cut to what an entry keeps, else null. */
export function auditSubject(value: unknown): string | null {
  return typeof value === 'string' ? value.slice(0, SUBJECT_CHARS) : null;
}

/**
 * The names of the fields a request gives, before validation, for the audit trail: never their
 * values, and only keys shaped like a field name — an unvalidated body's keys are the sender's
 * text and could carry anything, a secret included.
 */
export function givenFieldNames(input: unknown, omit: readonly string[] = []): string[] {
  if (!input || typeof input !== 'object') return [];
  return Object.entries(input)
    .filter(([key, value]) => value !== undefined && !omit.includes(key) && /^[A-Za-z]{1,40}$/.test(key))
    .map(([key]) => key)
    .sort();
}

/**
 * Runs an operation's work and records it in the audit trail with who asked and how it
 * ended: succeeded, or refused / failed with the error's code (then the error is thrown on).
 * Every operation a person or a token can do goes through here, so the CLI, the API and the
 * dashboard record alike.
 *
 * The entry is written once the outcome is known. If writing it fails after the work
 * succeeded, that error is thrown: an action that cannot be recorded is not reported as
 * done. A refusal that cannot be recorded throws the refusal, which is what the caller
 * must see.
 */
export async function audited<T>(db: Queryable, actor: AuditActor, action: AuditedAction<T>, work: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await work();
  } catch (error) {
    const { code } = describeError(error);
    await insertAuditEntry(db, {
      actor,
      action: action.action,
      subject: action.subject,
      outcome: auditOutcomeOf(code),
      errorCode: code,
      details: action.details ?? {},
    }).catch(() => {});
    throw error;
  }
  await insertAuditEntry(db, {
    actor,
    action: action.action,
    subject: action.subjectOf ? action.subjectOf(result) : action.subject,
    outcome: 'succeeded',
    errorCode: null,
    details: { ...action.details, ...action.detailsOf?.(result) },
  });
  return result;
}

/**
 * Records an action refused before its operation ran: the API refuses a token whose role may
 * not do it (FORBIDDEN) before the operation, which records everything else, is reached.
 */
export async function recordRefusal(db: Queryable, actor: AuditActor, action: AuditAction, subject: string | null, errorCode: string): Promise<void> {
  await insertAuditEntry(db, { actor, action, subject, outcome: auditOutcomeOf(errorCode), errorCode, details: {} });
}

/**
 * Records a sign-in to the dashboard: called by the sign-in flow once it knows who signed in
 * (succeeded), or why it refused them (`errorCode`; `actor.name` is then what they claimed).
 */
export async function recordSignIn(db: Queryable, actor: AuditActor, outcome: { errorCode?: string; method?: string } = {}): Promise<AuditEntry> {
  return insertAuditEntry(db, {
    actor,
    action: 'sign-in',
    subject: actor.name,
    outcome: outcome.errorCode ? auditOutcomeOf(outcome.errorCode) : 'succeeded',
    errorCode: outcome.errorCode ?? null,
    details: outcome.method ? { method: outcome.method } : {},
  });
}

/**
 * Runs a change to a shared notification channel (create, update, delete) and records it:
 * the channel's name and which of its fields changed, never their values (a webhook URL, a
 * signing secret). One call around the channel operation's own work.
 */
export async function recordChannelChange<T>(
  db: Queryable,
  actor: AuditActor,
  change: { kind: 'create' | 'update' | 'delete'; channel: string | null; changedFields?: string[] },
  work: () => Promise<T>,
): Promise<T> {
  return audited(db, actor, { action: `channel.${change.kind}`, subject: change.channel, details: change.changedFields ? { changed: change.changedFields } : {} }, work);
}
