"""Prepare the demo that `scripts/run` shows: a `demo` client allowed to read the documents of
user 1, a fresh access key for it (printed once), and a second key that is revoked at once, so
the refused request uses a real, well-formed, revoked key. Earlier runs' demo keys are revoked.

Prints JSON: {"clientId", "accessKey", "revokedKey"}.
"""

from __future__ import annotations

import json
import sys

from gateway.config import load_config
from gateway.identity import service
from gateway.runtime import check_store

ACTOR = "scripts/run"


def main(config_path: str) -> None:
    config = load_config(config_path)
    store = check_store(config)
    try:
        demo = next((c for c in store.list_clients(limit=10_000) if c.name == "demo"), None)
        if demo is None:
            demo = store.create_client(
                service.new_client({"name": "demo", "scopes": ["event.create"]}, None), ACTOR
            )
        for key in store.list_access_keys(demo.client_id):
            store.revoke_access_key(demo.client_id, key.key_id, ACTOR)
        reader = {"permissions": [{"action": "documents:read", "allow": True}], "name": "Document reader"}
        store.put_role(service.role_from(reader, "reader"), ACTOR)
        grant = {
            "name": "demo reads user 1's documents",
            "users": [{"userId": demo.client_id}],
            "statements": [{"roles": ["reader"], "resources": [{"resourceUri": "/users/1"}]}],
        }
        store.put_record(service.record_from(grant, "demo", ACTOR), ACTOR)
        keys = []
        for _ in range(2):
            key, access_key = service.new_access_key(demo.client_id, config.account_id)
            store.create_access_key(key, ACTOR)
            keys.append((key, access_key))
        store.revoke_access_key(demo.client_id, keys[1][0].key_id, ACTOR)
        print(json.dumps({"clientId": demo.client_id, "accessKey": keys[0][1], "revokedKey": keys[1][1]}))
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1])
