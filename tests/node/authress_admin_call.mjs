// The Authress node SDK calling the gateway's admin API with a token provider function, as a CI
// job does with its OIDC token (no stored secret):
//
//   node tests/node/authress_admin_call.mjs ADMIN_URL TOKEN CLIENT_NAME
//
// creates a service client named CLIENT_NAME, reads it back and lists clients; prints one JSON
// line {"created": ..., "read": ..., "listed": ...}; on an SDK error prints {"error", "status"}.
import { AuthressClient } from '@authress/sdk';

const [authressApiUrl, token, name] = process.argv.slice(2);
const client = new AuthressClient({ authressApiUrl }, () => token);
try {
  const created = await client.serviceClients.createClient({ name });
  const read = await client.serviceClients.getClient(created.data.clientId);
  const listed = await client.serviceClients.getClients({ limit: 100 });
  console.log(JSON.stringify({
    created: created.data.clientId,
    read: read.data.name,
    listed: listed.data.clients.map((c) => c.clientId),
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message || error), status: error.status ?? null }));
}
