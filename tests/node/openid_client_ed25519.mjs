// openid-client 6 (over oauth4webapi 3.x), a real third-party OAuth client, asking the gateway for
// a token with the client_credentials grant, authenticated by private_key_jwt with an Ed25519
// key: oauth4webapi signs such assertions with `alg: "Ed25519"` (RFC 9864's name).
//
//   node tests/node/openid_client_ed25519.mjs ISSUER CLIENT_ID
//
// reads the private JWK (with `kid`) as one JSON line on stdin, prints the token response as
// one JSON line on stdout, or the error on stderr with a non-zero exit.
import * as client from 'openid-client';

const [issuer, clientId] = process.argv.slice(2);
let input = '';
for await (const chunk of process.stdin) input += chunk;
const jwk = JSON.parse(input);
const key = await crypto.subtle.importKey('jwk', jwk, { name: 'Ed25519' }, false, ['sign']);
const config = await client.discovery(
  new URL(issuer),
  clientId,
  {},
  client.PrivateKeyJwt({ key, kid: jwk.kid }),
  { execute: [client.allowInsecureRequests] }, // the test gateway listens on plain http://127.0.0.1
);
const tokens = await client.clientCredentialsGrant(config);
process.stdout.write(JSON.stringify(tokens) + '\n');
