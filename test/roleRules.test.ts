import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/core/config.ts';
import { groupsOf, parseRoleRules, roleFor } from '../src/core/roleRules.ts';

/** BACKSTOP_OIDC_ROLE_MAP and the sign-in settings, decided in pure code. */

describe('role rules for people signing in', () => {
  const rules = parseRoleRules('group:backstop-admins=admin, group:backstop-ops=operator, email:Boss@Example.com=admin, domain:example.com=viewer');
  const person = (groups: string[], email: string | null = null, emailVerified = true) => ({ groups, email, emailVerified });

  it('the first rule that matches decides; no match is no access', () => {
    assert.equal(roleFor(rules, person(['backstop-ops', 'backstop-admins'])), 'admin');
    assert.equal(roleFor(rules, person(['backstop-ops'], 'boss@example.com')), 'operator');
    assert.equal(roleFor(rules, person([], 'boss@EXAMPLE.com')), 'admin');
    assert.equal(roleFor(rules, person(['sales'], 'someone@example.com')), 'viewer');
    assert.equal(roleFor(rules, person(['sales'], 'someone@example.com.evil.test')), null);
    assert.equal(roleFor(rules, person(['Backstop-Ops'])), null, 'group names compare exactly');
    assert.equal(roleFor(rules, person([])), null);
  });

  it('an unverified address matches no domain or address rule', () => {
    assert.equal(roleFor(rules, person([], 'boss@example.com', false)), null);
    assert.equal(roleFor(rules, person(['backstop-ops'], 'boss@example.com', false)), 'operator');
  });

  it('groups come from the configured claim, as a list or a single string', () => {
    assert.deepEqual(groupsOf({ groups: ['a', 1, 'b'] }, 'groups'), ['a', 'b']);
    assert.deepEqual(groupsOf({ roles: 'ops' }, 'roles'), ['ops']);
    assert.deepEqual(groupsOf({ groups: { a: 1 } }, 'groups'), []);
  });

  it('bad rules are refused, each named', () => {
    assert.throws(() => parseRoleRules('group:a=owner, team:b=viewer'), /"group:a=owner" is not KIND:VALUE=ROLE.*"team:b=viewer" is not/);
    assert.throws(() => parseRoleRules(' , '), /needs at least one rule/);
  });

  it('the sign-in settings: all or nothing, https issuers (http on loopback only), every problem at once', () => {
    const base = {
      BACKSTOP_OIDC_ISSUER: 'https://accounts.example.com',
      BACKSTOP_OIDC_CLIENT_ID: 'backstop',
      BACKSTOP_OIDC_ROLE_MAP: 'group:ops=operator',
      BACKSTOP_PUBLIC_URL: 'https://backstop.example.com/',
    };
    assert.equal(loadConfig({}, '/').oidc, null);
    const oidc = loadConfig(base, '/').oidc!;
    assert.equal(oidc.publicUrl, 'https://backstop.example.com');
    assert.equal(oidc.scopes, 'openid email profile');
    assert.equal(oidc.groupsClaim, 'groups');
    assert.equal(oidc.recheckMs, 0);
    assert.equal(oidc.providerName, 'accounts.example.com');
    assert.throws(
      () => loadConfig({ BACKSTOP_OIDC_ISSUER: 'https://accounts.example.com' }, '/'),
      /BACKSTOP_OIDC_CLIENT_ID: needed[\s\S]*BACKSTOP_OIDC_ROLE_MAP: needed[\s\S]*BACKSTOP_PUBLIC_URL: needed/,
    );
    assert.throws(() => loadConfig({ ...base, BACKSTOP_OIDC_ISSUER: 'http://idp.example.com' }, '/'), /must be https \(plain http only for a provider on loopback\)/);
    assert.equal(loadConfig({ ...base, BACKSTOP_OIDC_ISSUER: 'http://127.0.0.1:8080' }, '/').oidc!.issuer, 'http://127.0.0.1:8080');
    assert.throws(
      () => loadConfig({ ...base, BACKSTOP_OIDC_SCOPES: 'email', BACKSTOP_OIDC_RECHECK: '-1' }, '/'),
      /BACKSTOP_OIDC_RECHECK: must be 0 to 300[\s\S]*BACKSTOP_OIDC_SCOPES: must include openid/,
    );
  });
});
