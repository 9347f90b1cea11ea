"""`access_key`: a static access key as the bearer credential (contract §2, way 1).

The key is parsed strictly before anything else (see crypto.parse_access_key), the public key is
derived from the presented seed and compared in constant time with the stored one. The key's
client must exist and be enabled. Descriptions say what is wrong without echoing the key.
"""

from __future__ import annotations

import time

from gateway.crypto import MalformedAccessKey, parse_access_key, same_public_key
from gateway.errors import InvalidToken
from gateway.identity.directory import Directory
from gateway.models import Identity
from gateway.pipeline.authn import Verified
from gateway.presented import Presented


class AccessKeyAuthenticator:
    kind = "access_key"

    def __init__(self, directory: Directory, account_id: str) -> None:
        self.directory = directory
        self.account_id = account_id

    async def authenticate(self, presented: Presented) -> Verified | None:
        text = presented.text
        if not text.startswith("sc_"):
            return None
        try:
            parsed = parse_access_key(text)
        except MalformedAccessKey as exc:
            raise InvalidToken(f"malformed access key: {exc}", reason="malformed") from None
        if parsed.account_id != self.account_id:
            raise InvalidToken("the access key belongs to another account", reason="wrong_account")
        key = await self.directory.key(parsed.key_id)
        if key is None or key.client_id != parsed.client_id:
            raise InvalidToken("unknown key", reason="unknown_key")
        # The proof comes before the key's and client's status, so only the key's holder learns
        # that it was revoked. Deriving the public key is ~40 µs of CPU: cheaper here than a
        # thread hop.
        if not same_public_key(parsed.public_key(), key.public_key):
            raise InvalidToken("the access key does not match", reason="bad_signature")
        if not key.active:
            raise InvalidToken("the access key was revoked", reason="revoked")
        if key.expired(time.time()):
            raise InvalidToken("the access key expired", reason="expired")
        client = await self.directory.client(key.client_id)
        if client is None or client.disabled:
            raise InvalidToken("the client is disabled or deleted", reason="disabled_client")
        return Verified(
            Identity.of_client(client, self.kind, key.key_id),
            # The chain's cache compares this at every lookup: an expired key is refused on
            # every worker at its expiry instant, warm cache or not.
            expires_at=key.expires_epoch,
        )
