/**
 * Who made a request, for the records that say who did what: one per authenticated request
 * (src/server/auth.ts sets it as `request.actor`). A person signed in with OpenID Connect, or
 * a token: an API token (with the person or service that holds it, when known) or a GitHub
 * runner token; a run's own runner token acts for its run.
 */
export type Actor =
  | { kind: 'user'; subject: string; email: string | null; name: string | null; provider: string }
  /** A GitHub runner token's owner is its repository. */
  | { kind: 'token'; tokenId: string; name: string; owner: string | null; tokenKind: 'api' | 'github-runner' }
  | { kind: 'runner'; runId: string };
