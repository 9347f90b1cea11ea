"""Versioned schema migrations. Each version is applied once, inside the serialized write
transaction, so several replicas starting at once apply it exactly once. Append new versions;
never edit an applied one."""

from __future__ import annotations

from gateway.store.backend import Backend

# (version, statements); `{serial}` and `{blob}` are filled per dialect.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE clients (
                client_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                description TEXT,
                tenant TEXT,
                scopes TEXT NOT NULL,
                audiences TEXT NOT NULL,
                token_lifetime INTEGER,
                disabled INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            "CREATE INDEX clients_tenant ON clients (tenant, client_id)",
            """CREATE TABLE access_keys (
                key_id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                public_key {blob} NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT)""",
            "CREATE INDEX access_keys_client ON access_keys (client_id)",
            """CREATE TABLE roles (
                role_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                description TEXT,
                permissions TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            """CREATE TABLE records (
                record_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                description TEXT,
                statements TEXT NOT NULL,
                created_by TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            """CREATE TABLE record_users (
                record_id TEXT NOT NULL REFERENCES records (record_id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                PRIMARY KEY (record_id, user_id))""",
            "CREATE INDEX record_users_user ON record_users (user_id)",
            """CREATE TABLE audit (
                id {serial},
                at TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                detail TEXT NOT NULL)""",
            """CREATE TABLE changes (
                seq {serial},
                at TEXT NOT NULL,
                kind TEXT NOT NULL,
                ref TEXT NOT NULL)""",
            """CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                alg TEXT NOT NULL,
                sealed_private TEXT NOT NULL,
                public_jwk TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at TEXT NOT NULL)""",
        ],
    ),
    (
        2,
        [
            # Generated client secrets: only a SHA-256 of the (high-entropy) secret is kept.
            """CREATE TABLE client_secrets (
                secret_id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                hash TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT)""",
            "CREATE INDEX client_secrets_client ON client_secrets (client_id)",
            # Public keys a client registered for private_key_jwt (it keeps the private half).
            """CREATE TABLE client_public_keys (
                key_id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                alg TEXT NOT NULL,
                jwk TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT)""",
            "CREATE INDEX client_public_keys_client ON client_public_keys (client_id)",
            # Assertion ids seen, so each is used once within its lifetime (RFC 7523 §3).
            "CREATE TABLE used_jtis (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
            # Gateway tokens revoked before they expire (RFC 7009).
            "CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY, client_id TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            "ALTER TABLE signing_keys ADD COLUMN activated_at TEXT",
            "ALTER TABLE signing_keys ADD COLUMN retired_at TEXT",
        ],
    ),
    (
        3,
        [
            # Issue 14: credentials that expire, and when each was last used (minute precision,
            # written in batches by the workers' usage recorders, never once per request).
            "ALTER TABLE access_keys ADD COLUMN expires_at TEXT",
            "ALTER TABLE access_keys ADD COLUMN last_used TEXT",
            "ALTER TABLE client_secrets ADD COLUMN expires_at TEXT",
            "ALTER TABLE client_secrets ADD COLUMN last_used TEXT",
            # A client's rate limit, JSON {"requests", "window", "burst"} or NULL.
            "ALTER TABLE clients ADD COLUMN rate_limit TEXT",
            # Request counts per client, hour (ISO, truncated) and route; no foreign key, so the
            # history of a deleted client stays readable and a late batch never fails on it.
            """CREATE TABLE usage (
                client_id TEXT NOT NULL,
                hour TEXT NOT NULL,
                route TEXT NOT NULL,
                allowed BIGINT NOT NULL DEFAULT 0,
                refused BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (client_id, hour, route))""",
        ],
    ),
    (
        4,
        [
            # Trusted external identities (contract §5); `conditions` is a JSON object. No foreign
            # key on client_id: an entry whose client is gone matches as nobody (fails closed).
            """CREATE TABLE trusted_identities (
                identity_id TEXT PRIMARY KEY,
                issuer TEXT NOT NULL,
                audience TEXT NOT NULL,
                conditions TEXT NOT NULL,
                client_id TEXT NOT NULL,
                jwks_uri TEXT,
                preset TEXT,
                revision INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            "CREATE INDEX trusted_identities_client ON trusted_identities (client_id)",
        ],
    ),
    (
        5,
        [
            # The credentials vault (contract §8). Connections made over the admin API (those
            # from the config file live in memory); the client secret sealed, never plain.
            """CREATE TABLE vault_connections (
                connection_id TEXT PRIMARY KEY,
                settings TEXT NOT NULL,
                sealed_secret TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            # One user's credential at one connection; tokens sealed, bound to (connection, user).
            """CREATE TABLE vault_entries (
                connection_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                sealed_refresh TEXT NOT NULL,
                sealed_access TEXT,
                token_type TEXT NOT NULL,
                access_expires_at INTEGER,
                state TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (connection_id, user_id))""",
            # Login flows under way: only a hash of the state; the PKCE verifier sealed.
            """CREATE TABLE vault_login_states (
                state_hash TEXT PRIMARY KEY,
                connection_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                sealed_verifier TEXT NOT NULL,
                redirect_after TEXT,
                expires_at INTEGER NOT NULL,
                actor TEXT NOT NULL)""",
        ],
    ),
    (
        6,
        [
            # Web console sessions (issue 13): a SHA-256 of the session id, never the id itself.
            """CREATE TABLE console_sessions (
                id_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                credential_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expires_at INTEGER NOT NULL)""",
            "CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)",
        ],
    ),
]

_DIALECT = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgresql": {"serial": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


def migrate(backend: Backend) -> list[int]:
    """Apply the versions not applied yet; returns those it applied."""
    applied: list[int] = []
    with backend.write(timeout=600) as cur:  # DDL on a large store may take a while
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in cur.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                cur.execute(statement.format(**_DIALECT[backend.dialect]))
            cur.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, CURRENT_TIMESTAMP)",
                (version,),
            )
            applied.append(version)
    return applied


def current_version(backend: Backend) -> int:
    exists = {
        "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        "postgresql": "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'schema_migrations' AND schemaname = current_schema()",
    }[backend.dialect]
    with backend.read() as cur:
        if not cur.execute(exists).fetchone()[0]:
            return 0
        row = cur.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0) if row else 0
