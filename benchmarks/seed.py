"""Seed many access keys into a gateway's store in one process, for the cold-cache scenarios.

    python -m benchmarks.seed --config gateway.yaml --keys 2000 --role bench-reader \\
        --resource /users --audience http://127.0.0.1:8080

Prints the access keys as a JSON list. It uses the gateway's own service layer and store (what
its CLI uses), so a running gateway picks the new clients up through the change feed. Clients
get 5 keys each (the contract's maximum) and each its own access record granting `--role`.
"""

from __future__ import annotations

import argparse
import json
import sys

from gateway.config import load_config
from gateway.identity.service import new_access_key, new_client, record_from, role_from
from gateway.store import open_store

ACTOR = "benchmarks"
KEYS_PER_CLIENT = 5


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed")
    parser.add_argument("--config", required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--permission", default="documents:read")
    parser.add_argument("--resource", required=True)
    parser.add_argument("--scope", default="documents.read")
    parser.add_argument("--audience", required=True)
    args = parser.parse_args()

    config = load_config(args.config)
    store = open_store(config.store)
    try:
        role = role_from({"permissions": [{"action": args.permission, "allow": True}]}, args.role)
        store.put_role(role, ACTOR)
        clients = 0
        access_keys: list[str] = []
        while len(access_keys) < args.keys:
            client = new_client({"name": f"bench-seed-{clients}", "scopes": [args.scope],
                                 "audiences": [args.audience]}, None)
            store.create_client(client, ACTOR)
            clients += 1
            for _ in range(min(KEYS_PER_CLIENT, args.keys - len(access_keys))):
                key, text = new_access_key(client.client_id, config.account_id)
                store.create_access_key(key, ACTOR)
                access_keys.append(text)
            # One record per client, as when every service is granted its own access.
            record = record_from({
                "name": f"bench-seed-{clients}", "users": [{"userId": client.client_id}],
                "statements": [{"roles": [args.role], "resources": [{"resourceUri": args.resource}]}],
            }, None, ACTOR)
            store.put_record(record, ACTOR)
    finally:
        store.close()
    json.dump(access_keys, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
