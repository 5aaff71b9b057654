// @ts-check
import { defaultNotificationEvents } from '../serverConstants.js';
import { channelBody, channelStarted, emptyChannel } from './channelFields.js';

/**
 * The target form's values, and the request body made from them: every field of a target as
 * the API takes it (POST /api/v1/targets, PATCH /api/v1/targets/{name}), and where the API's
 * field errors land in the form. Pure: no DOM, no requests.
 */

/** @typedef {import('../types').Target} Target */
/** @typedef {import('../types').FieldProblem} FieldProblem */

export const retentionFields = /** @type {const} */ ([
  ['keepLast', 'Keep the last'],
  ['daily', 'Daily'],
  ['weekly', 'Weekly'],
  ['monthly', 'Monthly'],
]);

/**
 * @typedef {object} TargetForm
 * @property {string} name
 * @property {string} databaseUrl
 * @property {string} storeUrl
 * @property {string} profile
 * @property {boolean} withStorage
 * @property {string} compression
 * @property {string} encryptTo
 * @property {boolean} checksums
 * @property {string} maxAttempts
 * @property {boolean} exclusive
 * @property {string} cron
 * @property {string} timezone
 * @property {boolean} paused
 * @property {Record<'keepLast' | 'daily' | 'weekly' | 'monthly', string>} retention
 * @property {string} verifyEvery
 * @property {string} verifyCron
 * @property {string} verifyTimezone
 * @property {boolean} verifyChecksums
 * @property {string} restoreTo
 * @property {boolean} github
 * @property {{ owner: string, repo: string, workflow: string, ref: string }} executor
 * @property {string[]} removeChannels
 * @property {import('./channelFields.js').ChannelValues & { on: string[], channel: string }} newChannel  kind `shared`: a shared channel, by name (`channel`)
 * @property {boolean} checks
 */

/** @returns {TargetForm} */
export function emptyForm() {
  return {
    name: '',
    databaseUrl: '',
    storeUrl: '',
    profile: 'default',
    withStorage: false,
    compression: '',
    encryptTo: '',
    checksums: false,
    maxAttempts: '1',
    exclusive: true,
    cron: '',
    timezone: 'UTC',
    paused: false,
    retention: { keepLast: '', daily: '', weekly: '', monthly: '' },
    verifyEvery: '',
    verifyCron: '',
    verifyTimezone: '',
    verifyChecksums: false,
    restoreTo: '',
    github: false,
    executor: { owner: '', repo: '', workflow: 'backup.yml', ref: 'main' },
    removeChannels: [],
    newChannel: { ...emptyChannel('webhook'), channel: '', on: [...defaultNotificationEvents] },
    checks: true,
  };
}

/** @param {number | undefined} value */
const text = (value) => (value === undefined || value === null ? '' : String(value));

/**
 * @param {Target} target
 * @returns {TargetForm}
 */
export function formFrom(target) {
  const retention = target.retention ?? {};
  return {
    ...emptyForm(),
    name: target.name,
    storeUrl: target.storeUrl,
    profile: target.options?.profile ?? 'default',
    withStorage: target.options?.withStorage === true,
    compression: target.options?.compression ?? '',
    encryptTo: (target.options?.encryptTo ?? []).join('\n'),
    checksums: target.options?.checksums === true,
    maxAttempts: String(target.maxAttempts),
    exclusive: target.exclusive,
    cron: target.schedule?.cron ?? '',
    timezone: target.schedule?.timezone ?? 'UTC',
    paused: target.paused === true,
    retention: { keepLast: text(retention.keepLast), daily: text(retention.daily), weekly: text(retention.weekly), monthly: text(retention.monthly) },
    verifyEvery: text(target.verification?.everyNth),
    verifyCron: target.verification?.cron ?? '',
    verifyTimezone: target.verification?.timezone ?? '',
    verifyChecksums: target.verification?.checksums === true,
    restoreTo: (target.options?.restoreTo ?? []).join('\n'),
    github: target.executor !== null,
    executor: target.executor
      ? { owner: target.executor.owner, repo: target.executor.repo, workflow: target.executor.workflow, ref: target.executor.ref ?? 'main' }
      : emptyForm().executor,
  };
}

/** @param {string} value */
const lines = (value) => value.split(/[\s,]+/).filter(Boolean);

/**
 * A whole number from a field; anything else goes to the API as it is, which names the field.
 * @param {string} value
 */
const number = (value) => (/^\s*\d+\s*$/.test(value) ? Number(value) : value.trim());

/**
 * Whether the form adds a channel: a shared one chosen, or settings of a new one filled in.
 * @param {TargetForm} form
 */
export function addingChannel(form) {
  return form.newChannel.kind === 'shared' ? form.newChannel.channel !== '' : channelStarted(form.newChannel);
}

/** A signing secret for a new webhook: 32 random bytes, hex. Shown once, after saving. */
export function generateSecret() {
  return [...crypto.getRandomValues(new Uint8Array(32))].map((byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * The request body. Secrets are write-only: a blank database URL on edit keeps the stored
 * one, kept channels go by id alone (their URL and secret stay stored). Editing sends only
 * what changed.
 * @param {TargetForm} form
 * @param {Target | null} existing
 * @param {string | null} secret  the signing secret of a new webhook
 * @returns {Record<string, unknown>}
 */
export function bodyFrom(form, existing, secret) {
  /** @type {Record<string, unknown>} */
  const body = {};
  body.name = form.name.trim();
  if (form.databaseUrl.trim()) body.databaseUrl = form.databaseUrl.trim();
  if (form.storeUrl.trim()) body.storeUrl = form.storeUrl.trim();
  /** @type {Record<string, unknown>} */
  const options = { profile: form.profile, encryptTo: lines(form.encryptTo) };
  if (form.compression.trim()) options.compression = form.compression.trim();
  if (form.checksums || existing?.options?.checksums !== undefined) options.checksums = form.checksums;
  if (form.profile === 'supabase' && (form.withStorage || existing?.options?.withStorage !== undefined)) options.withStorage = form.withStorage;
  if (form.restoreTo.trim() || existing?.options?.restoreTo !== undefined) options.restoreTo = lines(form.restoreTo);
  // The form does not edit which databases a server target takes: what the target has is kept.
  if (form.profile === 'server' && existing?.options?.server !== undefined) options.server = existing.options.server;
  body.options = options;
  body.maxAttempts = number(form.maxAttempts);
  body.exclusive = form.exclusive;
  body.schedule = form.cron.trim() ? { cron: form.cron.trim(), timezone: form.timezone.trim() || 'UTC' } : null;
  /** @type {Record<string, unknown>} */
  const retention = {};
  for (const [key] of retentionFields) if (form.retention[key].trim() !== '') retention[key] = number(form.retention[key]);
  body.retention = Object.keys(retention).length ? retention : null;
  /** @type {Record<string, unknown>} */
  const verification = {};
  if (form.verifyEvery.trim()) verification.everyNth = number(form.verifyEvery);
  if (form.verifyCron.trim()) verification.cron = form.verifyCron.trim();
  if (form.verifyCron.trim() && form.verifyTimezone.trim()) verification.timezone = form.verifyTimezone.trim();
  if (form.verifyChecksums) verification.checksums = true;
  body.verification = Object.keys(verification).length ? verification : null;
  body.executor = form.github
    ? { kind: 'github', owner: form.executor.owner.trim(), repo: form.executor.repo.trim(), workflow: form.executor.workflow.trim(), ref: form.executor.ref.trim() || 'main' }
    : null;
  // `notifications` replaces the list; kept channels go by id alone.
  const adding = addingChannel(form);
  if (adding || form.removeChannels.length > 0 || !existing) {
    /** @type {Record<string, unknown>[]} */
    const channels = (existing?.notifications ?? [])
      .filter((channel) => !form.removeChannels.includes(channel.id))
      .map(({ id, kind, on, channel }) => ({ id, kind, on, ...(channel !== undefined ? { channel } : {}) }));
    if (adding && form.newChannel.kind === 'shared') channels.push({ kind: 'shared', channel: form.newChannel.channel, on: form.newChannel.on });
    else if (adding) channels.push({ ...channelBody(form.newChannel), on: form.newChannel.on, ...(secret ? { secret } : {}) });
    body.notifications = channels;
  }
  // The API checks reachability by default; only a choice against it is sent.
  if (!form.checks) body.checks = false;
  if (!existing) {
    if (body.notifications && /** @type {unknown[]} */ (body.notifications).length === 0) delete body.notifications;
    if (body.executor === null) delete body.executor;
    if (body.verification === null) delete body.verification;
    return body;
  }
  if (form.paused !== (existing.paused === true)) body.paused = form.paused;
  // On edit, only what changed: a PATCH of an unchanged store would check it again.
  /** @type {Record<string, unknown>} */
  const before = {
    name: existing.name,
    storeUrl: existing.storeUrl,
    options: { profile: 'default', ...existing.options },
    maxAttempts: existing.maxAttempts,
    exclusive: existing.exclusive,
    schedule: existing.schedule,
    retention: existing.retention,
    verification: existing.verification,
    executor: existing.executor ? { ...existing.executor, ref: existing.executor.ref ?? 'main' } : null,
  };
  for (const [key, value] of Object.entries(before)) if (key in body && sameJson(body[key], value)) delete body[key];
  return body;
}

/**
 * Whether two JSON values are equal, object keys in any order, absent equal to an empty list.
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
function sameJson(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    const left = Array.isArray(a) ? a : [];
    const right = Array.isArray(b) ? b : [];
    return left.length === right.length && left.every((value, index) => sameJson(value, right[index]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const left = /** @type {Record<string, unknown>} */ (a);
    const right = /** @type {Record<string, unknown>} */ (b);
    const keys = new Set([...Object.keys(left), ...Object.keys(right)]);
    return [...keys].every((key) => sameJson(left[key], right[key]));
  }
  return a === b || (a === undefined && Array.isArray(b) && b.length === 0);
}

/** Where each request field is shown, by its path's first segments (longest first). */
const fieldInputs = /** @type {[string, string][]} */ ([
  ['name', 'target-name'],
  ['databaseUrl', 'target-database-url'],
  ['storeUrl', 'target-store'],
  ['options.profile', 'target-profile'],
  ['options.withStorage', 'target-with-storage'],
  ['options.compression', 'target-compression'],
  ['options.encryptTo', 'target-encrypt'],
  ['options.checksums', 'target-checksums'],
  ['options.restoreTo', 'target-restore-to'],
  ['maxAttempts', 'target-max-attempts'],
  ['exclusive', 'target-exclusive'],
  ['schedule.timezone', 'target-timezone'],
  ['schedule', 'target-cron'],
  ['paused', 'target-paused'],
  ['retention.keepLast', 'target-retention-keepLast'],
  ['retention.daily', 'target-retention-daily'],
  ['retention.weekly', 'target-retention-weekly'],
  ['retention.monthly', 'target-retention-monthly'],
  ['verification.everyNth', 'target-verify-every'],
  ['verification.timezone', 'target-verify-timezone'],
  ['verification.checksums', 'target-verify-checksums'],
  ['verification', 'target-verify-cron'],
  ['executor.repo', 'target-executor-repo'],
  ['executor.workflow', 'target-executor-workflow'],
  ['executor.ref', 'target-executor-ref'],
  ['executor', 'target-executor-owner'],
]);

/**
 * The input a field error belongs to, or null: then it is shown above the form.
 * @param {string} field  a dotted path such as `options.encryptTo.0` (slashes accepted too)
 * @param {number} newChannelIndex  the index of the channel being added in `notifications`, or -1
 */
export function inputOfField(field, newChannelIndex) {
  const path = field.replace(/^\/?(body[./])?/, '').replaceAll('/', '.');
  if (newChannelIndex >= 0 && (path === `notifications.${newChannelIndex}` || path.startsWith(`notifications.${newChannelIndex}.`))) {
    // The new channel's inputs are `channel-<setting>` (see channelFields.js).
    const setting = path.split('.')[2];
    if (setting === undefined || setting === 'kind') return 'channel-kind';
    if (setting === 'channel') return 'channel-shared';
    return `channel-${setting}`;
  }
  for (const [prefix, input] of fieldInputs) if (path === prefix || path.startsWith(`${prefix}.`)) return input;
  return null;
}

/**
 * The API's field errors, placed: a message per input, and those that belong to none.
 * @param {FieldProblem[]} problems
 * @param {number} newChannelIndex
 */
export function placeFieldErrors(problems, newChannelIndex) {
  /** @type {Record<string, string>} */
  const byInput = {};
  /** @type {FieldProblem[]} */
  const unplaced = [];
  for (const problem of problems) {
    const input = inputOfField(problem.field, newChannelIndex);
    if (input === null) unplaced.push(problem);
    else byInput[input] = byInput[input] ? `${byInput[input]} ${problem.message}` : problem.message;
  }
  return { byInput, unplaced };
}
