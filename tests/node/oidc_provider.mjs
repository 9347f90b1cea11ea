// A real, third-party OpenID provider (panva's node `oidc-provider`) on 127.0.0.1, as a second
// issuer for the gateway's trusted-identity tests. It issues RFC 9068 JWT access tokens to one
// confidential client through the client_credentials grant, for the resource (audience) asked.
//
//   node tests/node/oidc_provider.mjs CLIENT_ID CLIENT_SECRET AUDIENCE
//
// prints one JSON line {"issuer": ..., "token_endpoint": ...} on stdout once it listens, and
// runs until killed. The signing key is generated at start and never leaves the process.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret, audience] = process.argv.slice(2);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: 'node-oidc-provider-1', use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }],
    jwks: { keys: [signing] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== audience) throw new Error('unknown resource');
          return { scope: 'deploy', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
        useGrantedResource: () => true,
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider:', err));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer, token_endpoint: `${issuer}/token` }));
});
