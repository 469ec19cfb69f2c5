// A real OpenID Provider for tests/api/real_provider.rs: oidc-provider with the
// client-credentials grant, resource indicators and JWT access tokens.
//
// Listens on 127.0.0.1 (port 0), prints `listening <port>`, and issues, for a token request
// with `resource=urn:starrocks-gateway:<alg>`, a JWT access token for the audience
// `starrocks-gateway` signed with <alg> (RS256, PS256, ES256, EdDSA or Ed25519) and carrying
// the custom claims `team` and `email`. `POST /test/rotate` replaces every signing key (the
// old ones leave the JWKS at once). Opaque tokens (`resource=urn:starrocks-gateway:opaque`)
// are validated by RFC 7662 introspection at `/token/introspection`.
import http from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'gateway-tests';
export const CLIENT_SECRET = 'a-test-only-client-secret-of-forty-characters';
const AUDIENCE = 'starrocks-gateway';
const RESOURCE_PREFIX = 'urn:starrocks-gateway:';

let generation = 0;

async function signingKeys() {
  generation += 1;
  const jwk = async (alg, options, kid) => ({
    ...(await exportJWK((await generateKeyPair(alg, { extractable: true, ...options })).privateKey)),
    kid: `${kid}-${generation}`,
    use: 'sig',
  });
  // The RSA key names no `alg`, as Azure AD publishes keys: it signs RS256 and PS256.
  return [
    await jwk('RS256', { modulusLength: 2048 }, 'rsa'),
    { ...(await jwk('ES256', {}, 'p256')), alg: 'ES256' },
    await jwk('Ed25519', {}, 'ed25519'),
  ];
}

function provider(issuer, keys) {
  return new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    }],
    jwks: { keys },
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo(ctx, resource) {
          const kind = resource.startsWith(RESOURCE_PREFIX) ? resource.slice(RESOURCE_PREFIX.length) : '';
          if (kind === 'opaque') {
            return { scope: 'starrocks', audience: AUDIENCE, accessTokenTTL: 600, accessTokenFormat: 'opaque' };
          }
          if (!['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'].includes(kind)) {
            throw new Error(`unknown resource ${resource}`);
          }
          return {
            scope: 'starrocks',
            audience: AUDIENCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: kind } },
          };
        },
      },
    },
    extraTokenClaims() {
      return { team: 'analytics', email: 'ci@example.com' };
    },
  });
}

const server = http.createServer();
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  let handler = provider(issuer, await signingKeys()).callback();
  server.on('request', async (req, res) => {
    if (req.method === 'POST' && req.url === '/test/rotate') {
      handler = provider(issuer, await signingKeys()).callback();
      res.writeHead(204).end();
      return;
    }
    handler(req, res);
  });
  process.stdout.write(`listening ${port}\n`);
});
