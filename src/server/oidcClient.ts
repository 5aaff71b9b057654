import * as openid from 'openid-client';
import type { OidcConfig } from '../core/config.ts';
import { BackstopError } from '../core/errors.ts';
import { groupsOf, roleFor } from '../core/roleRules.ts';
import type { ApiTokenRole } from '../core/roles.ts';
import type { ProviderTokens } from '../db/userSessions.ts';
import { guardedFetch } from '../net/outboundGuard.ts';

/**
 * Backstop as an OpenID Connect relying party, through openid-client: discovery of the
 * provider from its issuer URL, the authorization code flow with PKCE, state and nonce, and
 * the userinfo and refresh calls that confirm at each request who a person still is. Every
 * request to the provider goes through the outbound guard, like webhooks and S3 do.
 */

export interface Identity {
  subject: string;
  email: string | null;
  name: string | null;
  groups: string[];
  /** What BACKSTOP_OIDC_ROLE_MAP gives this person now; null: no access. */
  role: ApiTokenRole | null;
}

export interface OidcClient {
  readonly settings: OidcConfig;
  readonly redirectUri: string;
  /** Where to send the browser, with the secrets of the attempt to keep until it comes back. */
  beginSignIn(): Promise<{ url: string; state: string; nonce: string; codeVerifier: string }>;
  /** Exchanges the code of the callback URL; throws SIGN_IN_FAILED for anything the checks refuse. */
  finishSignIn(callbackUrl: URL, checks: { state: string; nonce: string; codeVerifier: string }): Promise<{ identity: Identity; tokens: ProviderTokens }>;
  /**
   * Who the holder of these tokens is at the provider now (userinfo), refreshing the access
   * token first when it expired and a refresh token is there. `tokens` is set when they
   * changed. Throws SIGN_IN_FAILED when the provider no longer accepts them, and
   * IDENTITY_PROVIDER_UNAVAILABLE when it cannot be asked.
   */
  currentIdentity(subject: string, tokens: ProviderTokens): Promise<{ identity: Identity; tokens?: ProviderTokens }>;
}

/** openid-client's fetch, through the outbound guard (which takes a string body). */
const providerFetch: openid.CustomFetch = (url, options) =>
  guardedFetch(url, {
    method: options.method,
    headers: options.headers,
    body: options.body === undefined || options.body === null ? undefined : String(options.body),
    redirect: 'manual',
    signal: options.signal ?? AbortSignal.timeout(10_000),
  });

function unavailable(settings: OidcConfig, error: unknown): BackstopError {
  return new BackstopError(
    'IDENTITY_PROVIDER_UNAVAILABLE',
    `The sign-in provider ${settings.issuer} could not be asked (${(error as Error).message}${(error as { cause?: Error }).cause ? `: ${(error as { cause: Error }).cause.message}` : ''}). Try again; if it persists, check BACKSTOP_OIDC_ISSUER and that the server can reach it.`,
    { cause: error },
  );
}

/**
 * Errors that are the provider's answer about these tokens or this code (sign in again), not
 * an outage: a provider answering 5xx, or not at all, must not sign everybody out.
 */
function isRefusal(error: unknown): boolean {
  if (error instanceof openid.ResponseBodyError) return error.status < 500;
  if (error instanceof openid.AuthorizationResponseError || error instanceof openid.WWWAuthenticateChallengeError) return true;
  if (error instanceof openid.ClientError) {
    if (error.cause instanceof Response) return error.cause.status < 500;
    return !(error.cause instanceof TypeError);
  }
  return false;
}

function tokensOf(response: openid.TokenEndpointResponse, previous?: ProviderTokens): ProviderTokens {
  return {
    accessToken: response.access_token,
    // A provider that does not rotate refresh tokens sends none with a refresh: keep the old one.
    refreshToken: response.refresh_token ?? previous?.refreshToken ?? null,
    accessExpiresAt: typeof response.expires_in === 'number' ? new Date(Date.now() + response.expires_in * 1000).toISOString() : null,
  };
}

export function createOidcClient(settings: OidcConfig): OidcClient {
  const redirectUri = `${settings.publicUrl}/auth/callback`;
  let discovered: Promise<openid.Configuration> | null = null;

  // Discovered once; a failure is not kept, so the next sign-in asks the provider again.
  const configuration = () => {
    discovered ??= openid
      .discovery(new URL(settings.issuer), settings.clientId, undefined, settings.clientSecret ? openid.ClientSecretPost(settings.clientSecret) : openid.None(), {
        [openid.customFetch]: providerFetch,
        // An http issuer is accepted only on loopback (src/core/config.ts), for local providers.
        execute: settings.issuer.startsWith('http:') ? [openid.allowInsecureRequests] : [],
      })
      .catch((error: unknown) => {
        discovered = null;
        throw unavailable(settings, error);
      });
    return discovered;
  };

  const identityOf = (claims: Record<string, unknown>, subject: string): Identity => {
    const email = typeof claims.email === 'string' ? claims.email : null;
    const groups = groupsOf(claims, settings.groupsClaim);
    const identity = { subject, email, name: typeof claims.name === 'string' ? claims.name : null, groups };
    return { ...identity, role: roleFor(settings.roleRules, { email, emailVerified: claims.email_verified === true, groups }) };
  };

  const userinfo = async (config: openid.Configuration, subject: string, accessToken: string) => identityOf(await openid.fetchUserInfo(config, accessToken, subject), subject);

  return {
    settings,
    redirectUri,
    async beginSignIn() {
      const config = await configuration();
      const codeVerifier = openid.randomPKCECodeVerifier();
      const state = openid.randomState();
      const nonce = openid.randomNonce();
      const url = openid.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: settings.scopes,
        code_challenge: await openid.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, state, nonce, codeVerifier };
    },
    async finishSignIn(callbackUrl, checks) {
      const config = await configuration();
      try {
        const response = await openid.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        });
        const idClaims = response.claims()!;
        // The groups may be in the ID token or only at userinfo (most providers): userinfo is
        // asked either way, as it is at every later request, and wins where both have a claim.
        const info = await openid.fetchUserInfo(config, response.access_token, idClaims.sub);
        return { identity: identityOf({ ...idClaims, ...info }, idClaims.sub), tokens: tokensOf(response) };
      } catch (error) {
        if (isRefusal(error)) throw new BackstopError('SIGN_IN_FAILED', `The sign-in provider refused the sign-in: ${(error as Error).message}. Sign in again.`, { cause: error });
        throw unavailable(settings, error);
      }
    },
    async currentIdentity(subject, tokens) {
      const config = await configuration();
      const expired = tokens.accessExpiresAt !== null && Date.parse(tokens.accessExpiresAt) <= Date.now() + 5_000;
      try {
        if (!expired) {
          try {
            return { identity: await userinfo(config, subject, tokens.accessToken) };
          } catch (error) {
            // An access token the provider revoked early: a refresh token may still get a new one.
            if (!isRefusal(error) || !tokens.refreshToken) throw error;
          }
        }
        if (!tokens.refreshToken) throw new BackstopError('SIGN_IN_FAILED', 'The sign-in expired at the provider. Sign in again.');
        const refreshed = tokensOf(await openid.refreshTokenGrant(config, tokens.refreshToken), tokens);
        return { identity: await userinfo(config, subject, refreshed.accessToken), tokens: refreshed };
      } catch (error) {
        if (error instanceof BackstopError) throw error;
        if (isRefusal(error))
          throw new BackstopError('SIGN_IN_FAILED', `The sign-in provider no longer accepts this sign-in (${(error as Error).message}). Sign in again.`, { cause: error });
        throw unavailable(settings, error);
      }
    },
  };
}
