import { apiTokenRoles, type ApiTokenRole } from './roles.ts';

/**
 * Which role a person signed in with OpenID Connect gets: an ordered list of rules read from
 * BACKSTOP_OIDC_ROLE_MAP, each matching a group (from the configured claim), an e-mail domain
 * or one e-mail address. The first rule that matches decides; no match means no access.
 */
export interface RoleRule {
  kind: 'group' | 'domain' | 'email';
  value: string;
  role: ApiTokenRole;
}

export const ROLE_MAP_SETTING = 'BACKSTOP_OIDC_ROLE_MAP';

const RULE = /^(group|domain|email):(.+)=([a-z]+)$/;

/** Parses `group:backstop-admins=admin, domain:example.com=viewer`; throws with every bad rule named. */
export function parseRoleRules(raw: string): RoleRule[] {
  const rules: RoleRule[] = [];
  const problems: string[] = [];
  for (const part of raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    const match = RULE.exec(part);
    const role = match?.[3] as ApiTokenRole | undefined;
    if (!match || !role || !apiTokenRoles.includes(role)) {
      problems.push(`"${part.slice(0, 80)}" is not KIND:VALUE=ROLE with KIND group, domain or email and ROLE ${apiTokenRoles.join(', ')}`);
      continue;
    }
    const kind = match[1] as RoleRule['kind'];
    // Domains and addresses compare without case, as mail does; group names are the provider's.
    const value = kind === 'group' ? match[2]!.trim() : match[2]!.trim().toLowerCase();
    rules.push({ kind, value, role });
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  if (rules.length === 0) throw new Error('needs at least one rule, e.g. group:backstop-admins=admin,domain:example.com=viewer');
  return rules;
}

export interface IdentityClaims {
  email: string | null;
  /** Only a verified address matches domain and email rules (an unverified one is anybody's claim). */
  emailVerified: boolean;
  groups: readonly string[];
}

/** The role the first matching rule gives, or null for no access. */
export function roleFor(rules: readonly RoleRule[], claims: IdentityClaims): ApiTokenRole | null {
  const email = claims.emailVerified ? (claims.email?.toLowerCase() ?? null) : null;
  const domain = email?.includes('@') ? email.slice(email.lastIndexOf('@') + 1) : null;
  for (const rule of rules) {
    if (rule.kind === 'group' && claims.groups.includes(rule.value)) return rule.role;
    if (rule.kind === 'domain' && domain === rule.value) return rule.role;
    if (rule.kind === 'email' && email === rule.value) return rule.role;
  }
  return null;
}

/** The groups in a claim: an array of strings, or one string; anything else is no group. */
export function groupsOf(claims: Record<string, unknown>, claim: string): string[] {
  const value = claims[claim];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}
