// A real OpenID Connect provider (the certified oidc-provider package) for authapp's federation
// tests: tests/oidc_peer.py starts it on a free loopback port and walks its login page over HTTP.
// It is a test peer, never a deployment: any login name is an account, any password is accepted.
//
// Environment:
//   PORT          listen on 127.0.0.1:PORT; the issuer is http://127.0.0.1:PORT
//   OIDC_CLIENTS  JSON list of {client_id, client_secret, redirect_uris}
//
// Prints `ready <issuer>` on stdout once listening; exits 0 on SIGTERM.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  throw new Error('PORT must be a port number');
}
const issuer = `http://127.0.0.1:${port}`;

// Confidential web clients of the code flow, registered with client_secret_basic (unless the
// entry names another method). oidc-provider 8.8 takes client_secret_basic and client_secret_post
// as one family: the secret in the Authorization header or in the form body both authenticate
// such a client. http redirect URIs on 127.0.0.1 and localhost are valid for web clients as long
// as they do not use the implicit flow, which these do not.
const clients = JSON.parse(process.env.OIDC_CLIENTS ?? '[]').map((client) => ({
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
  grant_types: ['authorization_code'],
  response_types: ['code'],
}));

// One RS256 signing key per run: the ID tokens are signed with it, and the discovery's jwks_uri
// publishes its public half.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'test-rs256' };

// Any login name is an account; its sub is the login name. A name starting with `unverified`
// stands for an account whose email address the provider has not verified.
function claimsOf(login) {
  return {
    sub: login,
    email: login.includes('@') ? login : `${login}@example.com`,
    email_verified: !login.startsWith('unverified'),
    name: login,
    preferred_username: login,
  };
}

// Consent is granted at once for every scope and claim the client asked for, as a first-party
// provider does: the sign-in is the login form alone.
async function grantEverything(ctx) {
  if (!ctx.oidc.session?.accountId) {
    return undefined; // not signed in yet: the login prompt comes first
  }
  const grant = new ctx.oidc.provider.Grant({
    accountId: ctx.oidc.session.accountId,
    clientId: ctx.oidc.client.clientId,
  });
  grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
  grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
  await grant.save();
  return grant;
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // By default (true) the scope-requested claims go to userinfo only when an access token is
  // issued; false puts email, email_verified, name and preferred_username in the ID token too.
  conformIdTokenClaims: false,
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => claimsOf(sub) }),
  loadExistingGrant: grantEverything,
  // oidc-provider 8.8's defaults, spelled out: an authorization request without a S256
  // code_challenge is refused (invalid_request), from confidential clients too (RFC 9700), and a
  // code issued with one is only exchanged with its code_verifier (invalid_grant otherwise).
  pkce: { methods: ['S256'], required: () => true },
  features: {
    devInteractions: { enabled: true }, // its built-in login form: plain HTML, no script needed
    userinfo: { enabled: true },
  },
  ttl: { AuthorizationCode: 60 },
});

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections(); // keep-alive connections would hold the close open
});
