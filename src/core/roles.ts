/**
 * The roles of API tokens, least to most: a viewer reads, an operator also triggers, cancels,
 * verifies and restores, an admin also manages targets and tokens.
 */
export const apiTokenRoles = ['admin', 'operator', 'viewer'] as const;
export type ApiTokenRole = (typeof apiTokenRoles)[number];

/** Each role may do what every role of a lower rank may. */
export const roleRank: Record<ApiTokenRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether `role` may do what `required` may. */
export function hasRole(role: ApiTokenRole, required: ApiTokenRole): boolean {
  return roleRank[role] >= roleRank[required];
}
