// The Authress node SDK asking the gateway's vault for a user's access token, as a service that
// acts for its users does, authenticated by its access key through the SDK's own
// ServiceClientTokenProvider:
//
//   node tests/node/authress_connection_credentials.mjs ADMIN_URL ACCESS_KEY CONNECTION_ID USER_ID
//
// prints one JSON line: the SDK's answer's data ({accessToken, tokenType, expiresIn}), or
// {"error", "status"} when the SDK threw.
import { AuthressClient, ServiceClientTokenProvider } from '@authress/sdk';

const [authressApiUrl, accessKey, connectionId, userId] = process.argv.slice(2);
const client = new AuthressClient({ authressApiUrl }, new ServiceClientTokenProvider(accessKey, authressApiUrl));
try {
  const response = await client.connections.getConnectionCredentials(connectionId, userId);
  console.log(JSON.stringify(response.data));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message || error), status: error.status ?? null }));
}
