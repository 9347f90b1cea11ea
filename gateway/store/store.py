"""Every read and write of the identity data, on either backend.

Each write runs in one serialized transaction that also appends to the change feed (which the
workers' caches follow) and, for admin changes, to the audit log: a change is visible, invalidated
and audited together or not at all. Audit details never hold a secret (no private key, no hash).
"""

from __future__ import annotations

from gateway.models import AccessKey, Client, Record, Role, SigningKey, now_iso
from gateway.store.clients import ClientsMixin
from gateway.store.console import ConsoleStore
from gateway.store.credentials import CredentialsMixin
from gateway.store.feed import FeedMixin
from gateway.store.grants import GrantsMixin
from gateway.store.identities import IdentityRecords
from gateway.store.signing import SigningKeysMixin
from gateway.store.tokens import TokensMixin
from gateway.store.usage import UsageMixin
from gateway.store.vault import VaultRecords


class Store(
    FeedMixin,
    ClientsMixin,
    CredentialsMixin,
    GrantsMixin,
    SigningKeysMixin,
    TokensMixin,
    UsageMixin,
    IdentityRecords,
    ConsoleStore,
    VaultRecords,
):
    """The one interface to the store: one mixin per record kind (gateway/store/<kind>.py), all
    over `StoreBase` (the backend, the change feed and audit rows every write adds)."""

    def initialize(
        self,
        account_id: str,
        client: Client,
        key: AccessKey,
        roles: tuple[Role, ...],
        record: Record,
        signing_keys: tuple[SigningKey, ...],
    ) -> bool:
        """Everything `gateway init` creates, in one transaction. Returns False (and changes
        nothing) when the store was initialised already, also by a replica racing this one."""
        with self.backend.write() as cur:
            if cur.execute("SELECT value FROM meta WHERE key = 'initialized'").fetchone():
                return False
            cur.execute("INSERT INTO meta (key, value) VALUES ('account_id', ?)", (account_id,))
            cur.execute("INSERT INTO meta (key, value) VALUES ('initialized', ?)", (now_iso(),))
            self._insert_client(cur, client)
            self._insert_key(cur, key)
            for role in roles:
                self._upsert_role(cur, role)
            self._upsert_record(cur, record)
            for signing_key in signing_keys:
                self._insert_signing_key(cur, signing_key)
            self._audit(
                cur, "gateway init", "init", "/gateway", {"clientId": client.client_id, "keyId": key.key_id}
            )
            self._change(cur, "grants", "*")
        return True
