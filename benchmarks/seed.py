"""Seeding a gateway's store with many clients and access keys.

Two ways, for two kinds of scenario:

- `python -m benchmarks.seed` (access_key_cold): a few thousand keys through the gateway's own
  service layer and store, as its CLI would make them, so a running gateway picks them up
  through the change feed:

      python -m benchmarks.seed --config gateway.yaml --keys 2000 --role bench-reader \\
          --resource /users --audience http://127.0.0.1:8080

  prints the access keys as a JSON list. Clients get 5 keys each (the contract's maximum) and
  each its own access record granting `--role`.

- `bulk_seed` (keys_*): up to millions of clients, written straight into the tables of the
  schema (`gateway/store/migrations.py`) in bulk, before the gateway starts: SQLite in one
  transaction with `executemany` (synchronous=OFF and no journal during the seed only),
  PostgreSQL with COPY. Only the keys a scenario sends are real Ed25519 keys; the other clients
  carry one key each with a random 32-byte "public key" (never presented, so never derived).
  It needs no `gateway` import, so it works for any revision run with BENCH_GATEWAY_SRC.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import sqlite3
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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


# ------------------------------------------------------------------------------ bulk seeding

# PKCS#8 v1 DER of an Ed25519 private key: a fixed 16-byte prefix, then the 32-byte seed (what
# an access key's last part is, in standard base64: gateway/crypto.py).
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_ALNUM = (string.ascii_letters + string.digits).encode()
_TO_ALNUM = bytes(_ALNUM[b % len(_ALNUM)] for b in range(256))  # a slight bias is harmless here
CLIENT_COLUMNS = ("client_id, name, description, tenant, scopes, audiences, token_lifetime, disabled, "
                  "created_at, updated_at")
KEY_COLUMNS = "key_id, client_id, public_key, created_at, revoked_at"


def random_ids(prefix: str, count: int, length: int = 22) -> list[str]:
    """`count` ids `prefix` + `length` random letters and digits (the gateway's id format)."""
    raw = os.urandom(count * length).translate(_TO_ALNUM).decode("ascii")
    return [prefix + raw[i:i + length] for i in range(0, count * length, length)]


@dataclass
class BulkRows:
    """What a bulk seed writes: clients (id order) and access keys (id order), plus the access
    keys (texts) of the real keys, the ones a scenario sends."""

    clients: list[tuple[str, str]]  # (client_id, name)
    keys: list[tuple[str, str, bytes]]  # (key_id, client_id, public_key)
    access_keys: list[str]


def bulk_rows(clients: int, hot_clients: int, hot_keys: int, account_id: str) -> BulkRows:
    """`clients` clients; the first `hot_clients` of them (in creation order) share `hot_keys`
    real access keys round-robin (more than the API's 5 per client: written directly, and
    nothing on the verification path counts them); every other client has one key whose
    public key is 32 random bytes."""
    hot_clients = min(hot_clients, clients)
    client_ids = random_ids("sc_", clients)
    rows_clients = [(cid, f"bench-keys-{i}") for i, cid in enumerate(client_ids)]
    filler = clients - hot_clients
    key_ids = random_ids("acc_", filler + hot_keys)
    noise = os.urandom(32 * filler)
    rows_keys = [(key_ids[i], client_ids[hot_clients + i], noise[32 * i:32 * i + 32]) for i in range(filler)]
    access_keys = []
    for n in range(hot_keys):
        client_id, key_id = client_ids[n % hot_clients], key_ids[filler + n]
        seed = os.urandom(32)
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        rows_keys.append((key_id, client_id, public))
        encoded = base64.b64encode(_PKCS8_PREFIX + seed).decode()
        access_keys.append(f"{client_id}.{key_id}.{account_id}.{encoded}")
    rows_clients.sort()  # insertion in key order: fast, and B-tree pages packed
    rows_keys.sort()
    return BulkRows(rows_clients, rows_keys, access_keys)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def seed_sqlite(path: Path, rows: BulkRows, scopes: list[str], audiences: list[str]) -> None:
    """Into an initialised SQLite store (the gateway not running): one transaction, durability
    off for its duration only (the store's WAL mode is restored afterwards)."""
    now, scopes_json, audiences_json = _now(), json.dumps(scopes), json.dumps(audiences)
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        # Leaving WAL needs the only connection: with another one open, seed in WAL mode.
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB for the index builds
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO clients ({CLIENT_COLUMNS}) VALUES (?, ?, NULL, NULL, ?, ?, NULL, 0, ?, ?)",
            ((cid, name, scopes_json, audiences_json, now, now) for cid, name in rows.clients))
        conn.executemany(
            f"INSERT INTO access_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, NULL)",
            ((kid, cid, public, now) for kid, cid, public in rows.keys))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute(f"PRAGMA journal_mode={journal}")  # WAL: what the gateway sets
    finally:
        conn.close()


def _copy_text(value: str) -> str:
    if any(c in value for c in "\\\t\n\r"):
        raise ValueError(f"unexpected character in a COPY field: {value!r}")
    return value


def seed_postgres(url: str, rows: BulkRows, scopes: list[str], audiences: list[str]) -> None:
    """Into an initialised PostgreSQL store (the gateway not running), with COPY in text format,
    foreign-key triggers off for the session when the role may (superuser): the rows are
    consistent by construction."""
    import psycopg

    now = _now()
    scopes_json, audiences_json = _copy_text(json.dumps(scopes)), _copy_text(json.dumps(audiences))
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            try:
                cur.execute("SET session_replication_role = replica")
            except psycopg.errors.InsufficientPrivilege:
                conn.rollback()
        with conn.cursor() as cur:
            with cur.copy(f"COPY clients ({CLIENT_COLUMNS}) FROM STDIN") as copy:
                for chunk in _chunks(f"{cid}\t{name}\t\\N\t\\N\t{scopes_json}\t{audiences_json}\t\\N\t0\t"
                                     f"{now}\t{now}\n" for cid, name in rows.clients):
                    copy.write(chunk)
            with cur.copy(f"COPY access_keys ({KEY_COLUMNS}) FROM STDIN") as copy:
                for chunk in _chunks(f"{kid}\t{cid}\t\\\\x{public.hex()}\t{now}\t\\N\n"
                                     for kid, cid, public in rows.keys):
                    copy.write(chunk)
        conn.commit()
        conn.execute("ANALYZE clients")
        conn.execute("ANALYZE access_keys")
        conn.commit()


def _chunks(lines: Iterator[str], size: int = 1 << 20) -> Iterator[bytes]:
    buffer, length = io.StringIO(), 0
    for line in lines:
        buffer.write(line)
        length += len(line)
        if length >= size:
            yield buffer.getvalue().encode()
            buffer, length = io.StringIO(), 0
    if length:
        yield buffer.getvalue().encode()


def bulk_seed(store: dict[str, Any], clients: int, hot_clients: int, hot_keys: int, account_id: str,
              scopes: list[str], audiences: list[str]) -> list[str]:
    """Seed an initialised store (`{"sqlite": path}` or `{"postgresql": url}`) with `clients`
    clients; returns the `hot_keys` real access keys (see bulk_rows)."""
    rows = bulk_rows(clients, hot_clients, hot_keys, account_id)
    if "sqlite" in store:
        seed_sqlite(Path(store["sqlite"]), rows, scopes, audiences)
    else:
        seed_postgres(store["postgresql"], rows, scopes, audiences)
    return rows.access_keys


if __name__ == "__main__":
    sys.exit(main())
