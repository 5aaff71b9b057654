import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestPerson {
  email: string;
  name: string;
  groups: string[];
}

export interface TestOidcProvider {
  issuer: string;
  /** The provider's directory: change a person's groups and the next userinfo answer says so. */
  people: Map<string, TestPerson>;
  /** How many userinfo calls the provider answered. */
  userinfoCalls(): number;
  close(): Promise<void>;
}

/**
 * A real OpenID Connect provider (oidc-provider, certified) on 127.0.0.1, with one confidential
 * client and a directory of people. Its own development sign-in pages take any password and
 * the login name as the account: a person signs in by typing their login.
 */
export async function startOidcProvider(options: { clientId: string; clientSecret: string; redirectUri: string; people: Record<string, TestPerson> }): Promise<TestOidcProvider> {
  const people = new Map(Object.entries(options.people));
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let userinfoCalls = 0;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    pkce: { required: () => true },
    cookies: { keys: ['backstop test provider cookie key'] },
    // The directory is read at every userinfo call: a change of groups shows at the next one.
    findAccount: async (_ctx, id) => {
      if (!people.has(id)) return undefined;
      return {
        accountId: id,
        claims: async () => {
          const person = people.get(id)!;
          return { sub: id, email: person.email, email_verified: true, name: person.name, groups: [...person.groups] };
        },
      };
    },
  });
  provider.on('server_error', (_ctx, error) => process.stderr.write(`test OIDC provider: ${error.stack}\n`));
  provider.use(async (ctx, next) => {
    if (ctx.path === '/me') userinfoCalls++;
    await next();
  });
  server.on('request', provider.callback());
  return {
    issuer,
    people,
    userinfoCalls: () => userinfoCalls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
