import type { ApiTokenRole } from './roles.ts';

/**
 * Through what an action came: the command line, the API, the dashboard (the API, from its
 * pages), a loop of the server, the Supabase `trigger-backup` edge function.
 */
export const actorClients = ['cli', 'api', 'dashboard', 'scheduler', 'edge-function'] as const;
export type ActorClient = (typeof actorClients)[number];

export const actorKinds = ['user', 'token', 'cli', 'system'] as const;
export type ActorKind = (typeof actorKinds)[number];

/**
 * Who asked for an action, as the audit trail records it (`Actor` in actor.ts is who made an
 * HTTP request; the server turns one into this with the client's address). Every entry point builds one and
 * hands it to the operation: the API from the request's credentials and client address, the
 * CLI from the OS user and host, the scheduler names itself. `address` is where from: the
 * client's IP address for the API, the host name for the CLI and the server's loops.
 */
export type AuditActor =
  /** A person signed in (to the dashboard; to a Supabase project, for the edge function, where the organisation decides and the role is null). */
  | { kind: 'user'; id: string; name: string; role: ApiTokenRole | null; address: string | null; client: ActorClient }
  /** An API token (the dashboard's, a script's). */
  | { kind: 'token'; id: string; name: string; role: ApiTokenRole; address: string | null; client: ActorClient }
  /** A person at the command line, who holds the catalog: an OS user on a host. */
  | { kind: 'cli'; name: string; address: string | null; client: 'cli' }
  /** A loop of Backstop itself (the scheduler, the hourly prune pass). */
  | { kind: 'system'; name: string; address: string | null; client: 'scheduler' };

/** The actor in words, for run events and lines of text: never a token, only its name. */
export function describeAuditActor(actor: AuditActor): string {
  switch (actor.kind) {
    case 'user':
      return `user "${actor.name}"`;
    case 'token':
      return `token "${actor.name}"`;
    case 'cli':
      return `${actor.name} at the command line${actor.address ? ` of ${actor.address}` : ''}`;
    case 'system':
      return `Backstop's ${actor.name}`;
  }
}

/** The actor for a loop of the server: the scheduler, the pruner. */
export function systemActor(name: string, host: string | null): AuditActor {
  return { kind: 'system', name, address: host, client: 'scheduler' };
}
