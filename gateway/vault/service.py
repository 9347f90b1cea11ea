"""The credentials vault (contract §8): what the admin API, the login callback and the console
call. Users' refresh tokens stay here, sealed; callers get access tokens.

Getting a credential:

    in-memory cache (this worker; > 60 s left)                         → the access token
    └─ miss: one fetch per (connection, user) in this worker, the others await it
       └─ the store: a sealed access token with > 60 s left             → the access token
          └─ else, under the credential's lock across workers and replicas:
             read again (another holder may have refreshed meanwhile)   → its access token
             refresh at the provider; store the rotated refresh token and the new access
             token; commit; only then answer

A crash between the provider's answer and the commit loses that answer: the stored refresh token
is the one before. A provider that rotates refresh tokens and refuses reuse then answers
`invalid_grant`, the credential is marked for re-authorization (409) and the user logs in again;
at worst one rotation is lost, never a stored credential.

Cached reads are audited in batches (at most a second later); refreshes, writes and deletes in
the same transaction as the change. Nothing here logs, audits, counts or raises a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.background import every
from gateway.cache import ExpiringCache
from gateway.crypto import Sealer, SealError
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    ReauthorizationRequired,
)
from gateway.identity.grants import GrantSet
from gateway.metrics import VAULT_REFRESH
from gateway.models import Change, now_iso
from gateway.store import Missing, Store, StoreError
from gateway.store.vault import credential_target
from gateway.vault.provider import ProviderClient, ProviderRejected, ProviderUnreachable, TokenAnswer
from gateway.vault_models import (
    ACCESS_TOKEN,
    CONNECTION_SECRET,
    REFRESH_TOKEN,
    Connection,
    VaultEntry,
    binding,
    user_id_of,
)

log = logging.getLogger("gateway.vault")

MARGIN = 60  # an access token is handed out only while it has more than this left (contract §8)
DEFAULT_LIFETIME = 3600  # when a provider's answer has no expires_in
_UNKNOWN = object()
ACTIVE = "active"
REAUTHORIZE = "reauthorization_required"
UNREADABLE = "unreadable"  # the audit's outcome for a stored credential that does not open


@dataclass(frozen=True, slots=True)
class AccessToken:
    access_token: str
    token_type: str
    expires_at: int

    def render(self, now: float) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "tokenType": self.token_type,
            "expiresIn": max(0, int(self.expires_at - now)),
        }


class Vault:
    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        configured: tuple[Connection, ...],
        provider_timeout: float,
        environ: dict[str, str] | os._Environ[str] = os.environ,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.provider = ProviderClient(provider_timeout)
        self._configured = {c.connection_id: c for c in configured}
        self._environ = environ
        # Refreshes wait on providers while holding a store connection: a pool of their own, so
        # they never starve the threads every other store call uses, and small, so they hold at
        # most 4 of a worker's 8 PostgreSQL connections (more waiting refreshes queue here).
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vault")
        # Bounded: one entry per user asked for, and unknown connection ids are remembered too.
        self._tokens: ExpiringCache[tuple[str, str], AccessToken] = ExpiringCache(100_000, 86_400)
        self._connections: ExpiringCache[str, object] = ExpiringCache(10_000, 300)
        self._generation: dict[tuple[str, str], int] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[AccessToken]] = {}
        # Appended to from the vault's threads too: a deque's append and popleft are atomic.
        self._audit: deque[tuple[str, str, str, str, dict[str, Any]]] = deque()

    # --- plumbing ---------------------------------------------------------------------------

    async def run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, call, *args)

    def on_change(self, change: Change | None) -> None:
        """The change feed (None: forget everything, the feed could not be followed)."""
        if change is None:
            self._tokens.clear()
            self._connections.clear()
            for key in self._generation:
                self._generation[key] += 1
            return
        if change.kind == "connection":
            # Rare: a connection's tokens are dropped with everything else cached.
            self._connections.clear()
            self._tokens.clear()
            for key in self._generation:
                self._generation[key] += 1
        elif change.kind == "vault":
            connection_id, user_id = json.loads(change.ref)
            self._forget((connection_id, user_id))

    def _forget(self, key: tuple[str, str]) -> None:
        self._tokens.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    def audit_later(self, actor: str, action: str, connection_id: str, user_id: str, outcome: str) -> None:
        self._audit.append(
            (
                now_iso(),
                actor,
                action,
                credential_target(connection_id, user_id),
                {"connectionId": connection_id, "userId": user_id, "outcome": outcome},
            )
        )

    async def flush_audit(self) -> None:
        entries = []
        while self._audit:
            entries.append(self._audit.popleft())
        if entries:
            try:
                await self.run(self.store.audit_batch, entries)
            except Exception:
                self._audit.extendleft(reversed(entries))  # kept for the next flush
                raise

    async def audit_loop(self, interval: float = 0.5) -> None:
        await every(
            interval,
            self.flush_audit,
            what="writing the vault's audit entries",
            log=log,
            expected=(StoreError,),
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush_audit()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.provider.close()

    # --- connections ------------------------------------------------------------------------

    def configured(self, connection_id: str) -> Connection | None:
        return self._configured.get(connection_id)

    def configured_connections(self) -> list[Connection]:
        return sorted(self._configured.values(), key=lambda c: c.connection_id)

    async def connection(self, connection_id: str, fresh: bool = False) -> Connection:
        """`fresh` reads past the cache (which follows the change feed, so it may be a poll
        behind): for rare steps that must see a change made a moment ago."""
        found: object = self._configured.get(connection_id)
        if found is None:
            found = _UNKNOWN if fresh else self._connections.get(connection_id, _UNKNOWN)
            if found is _UNKNOWN:
                found = await self.run(self.store.get_connection, connection_id)
                self._connections[connection_id] = found
        if not isinstance(found, Connection):
            raise NotFound(f"no connection {connection_id}")
        return found

    def seal_secret(self, connection_id: str, secret: str) -> str:
        return self.sealer.seal(secret.encode(), binding(CONNECTION_SECRET, connection_id))

    def secret_of(self, connection: Connection) -> str | None:
        if connection.client_secret_env is not None:
            value = self._environ.get(connection.client_secret_env)
            if not value:
                raise ProviderUnavailable(
                    f"connection {connection.connection_id}: environment variable "
                    f"{connection.client_secret_env} is not set"
                )
            return value
        if connection.sealed_secret is not None:
            try:
                return self.sealer.open(
                    connection.sealed_secret, binding(CONNECTION_SECRET, connection.connection_id)
                ).decode()
            except SealError as exc:
                # Sealed under a master key no longer configured, or tampered with: the provider
                # cannot be called, as when clientSecretEnv names an unset variable (502).
                log.error("connection %s: its client secret does not open: %s", connection.connection_id, exc)
                raise ProviderUnavailable(
                    f"connection {connection.connection_id}: its client secret cannot be opened with the "
                    "configured master keys; set it again"
                ) from None
        return None

    # --- permission -------------------------------------------------------------------------

    async def allowed(
        self, grants: GrantSet, actor: str, permission: str, connection_id: str, user_id: str
    ) -> Connection:
        """The connection, once the caller holds `permission` on the user's credential resource;
        refused before anything reads the credential or calls the provider."""
        user_id_of(user_id)
        connection = await self.connection(connection_id)
        resource = connection.resource(user_id)
        if grants.find(permission, resource) is None:
            self.audit_later(
                actor, f"credentials.{permission.split(':')[-1]}", connection_id, user_id, "denied"
            )
            raise AccessDenied(f"{permission} on {resource} is needed")
        return connection

    # --- sealing ----------------------------------------------------------------------------

    def _seal(self, purpose: str, entry_key: tuple[str, str], value: str) -> str:
        return self.sealer.seal(value.encode(), binding(purpose, *entry_key))

    def _open(self, purpose: str, entry_key: tuple[str, str], sealed: str, actor: str) -> str:
        try:
            return self.sealer.open(sealed, binding(purpose, *entry_key)).decode()
        except SealError as exc:
            # A row copied from another user, tampered with, or sealed under a master key that
            # is no longer configured: refused, never answered with something else's token. A
            # known state with a way out, not a server error: storing the credential again (a
            # new login or PUT) replaces it, as after invalid_grant (409). Nothing is marked:
            # restoring the master key in previous_master_keys makes the row readable again.
            log.error("connection %s, user %s: the stored credential does not open: %s", *entry_key, exc)
            self.audit_later(actor, "credentials.read", *entry_key, UNREADABLE)
            raise ReauthorizationRequired(
                "the stored credential cannot be opened by this gateway (its log says which); "
                "connect the user again"
            ) from None

    def _entry(
        self, key: tuple[str, str], refresh: str, answer: TokenAnswer | None, state: str = ACTIVE
    ) -> VaultEntry:
        now = now_iso()
        access = expires = None
        token_type = "Bearer"
        if answer is not None:
            access = self._seal(ACCESS_TOKEN, key, answer.access_token)
            lifetime = DEFAULT_LIFETIME if answer.expires_in is None else answer.expires_in
            expires = int(time.time()) + lifetime
            token_type = answer.token_type
        sealed_refresh = self._seal(REFRESH_TOKEN, key, refresh)
        return VaultEntry(key[0], key[1], sealed_refresh, access, token_type, expires, state, 0, now, now)

    def _fresh(self, key: tuple[str, str], entry: VaultEntry, actor: str) -> AccessToken | None:
        if (
            entry.state == ACTIVE
            and entry.sealed_access is not None
            and entry.access_expires_at is not None
            and entry.access_expires_at - time.time() > MARGIN
        ):
            return AccessToken(
                self._open(ACCESS_TOKEN, key, entry.sealed_access, actor),
                entry.token_type,
                entry.access_expires_at,
            )
        return None

    # --- GET credentials --------------------------------------------------------------------

    async def credentials(
        self, grants: GrantSet, actor: str, connection_id: str, user_id: str
    ) -> AccessToken:
        connection = await self.allowed(grants, actor, "credentials:read", connection_id, user_id)
        key = (connection_id, user_id)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at - time.time() > MARGIN:
            self.audit_later(actor, "credentials.read", connection_id, user_id, "cached")
            return cached
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(connection, key, actor))
            self._inflight[key] = flight
            flight.add_done_callback(lambda _: self._inflight.pop(key, None))
        else:
            self.audit_later(actor, "credentials.read", connection_id, user_id, "joined")
        return await asyncio.shield(flight)

    async def _fetch(self, connection: Connection, key: tuple[str, str], actor: str) -> AccessToken:
        generation = self._generation.get(key, 0)
        token: AccessToken = await self.run(self._fetch_sync, connection, key, actor)
        if self._generation.get(key, 0) == generation:  # no change raced the fetch
            self._tokens[key] = token
        return token

    def _fetch_sync(self, connection: Connection, key: tuple[str, str], actor: str) -> AccessToken:
        entry = self.store.get_vault_entry(*key)
        self._check(entry, actor, key)
        assert entry is not None
        fresh = self._fresh(key, entry, actor)
        if fresh is not None:
            self.audit_later(actor, "credentials.read", *key, "stored")
            return fresh
        outcome: GatewayError | AccessToken
        try:
            with self.store.vault_session(*key) as session:
                entry = session.entry
                self._check(entry, actor, key)
                assert entry is not None
                fresh = self._fresh(key, entry, actor)
                if fresh is not None:  # refreshed by another worker or replica while we waited
                    self.audit_later(actor, "credentials.read", *key, "stored")
                    return fresh
                outcome = self._refresh(connection, key, entry, session, actor)
        except Missing:  # its connection was deleted while the provider answered
            raise NotFound(f"no credential stored for user {key[1]} at connection {key[0]}") from None
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def _check(self, entry: VaultEntry | None, actor: str, key: tuple[str, str]) -> None:
        if entry is None:
            self.audit_later(actor, "credentials.read", *key, "not_found")
            raise NotFound(f"no credential stored for user {key[1]} at connection {key[0]}")
        if entry.state == REAUTHORIZE:
            self.audit_later(actor, "credentials.read", *key, REAUTHORIZE)
            raise ReauthorizationRequired()

    def _refresh(
        self, connection: Connection, key: tuple[str, str], entry: VaultEntry, session: Any, actor: str
    ) -> GatewayError | AccessToken:
        """Run the refresh grant inside the credential's lock. Errors are returned, not raised:
        raising would roll back the transaction, and a refusal must be stored."""
        refresh = self._open(REFRESH_TOKEN, key, entry.sealed_refresh, actor)
        try:
            answer = self.provider.refresh(connection, self.secret_of(connection), refresh)
        except ProviderRejected as exc:
            if exc.error == "invalid_grant":
                session.save(
                    self._entry(key, refresh, None, REAUTHORIZE),
                    actor,
                    "credentials.refresh",
                    {"outcome": "invalid_grant"},
                )
                VAULT_REFRESH.labels(key[0], "invalid_grant").inc()
                return ReauthorizationRequired()
            VAULT_REFRESH.labels(key[0], "rejected").inc()
            log.warning("connection %s: the provider refused the refresh (%s)", key[0], exc.error)
            self.audit_later(actor, "credentials.refresh", *key, f"rejected:{exc.error}")
            return ProviderUnavailable(
                f"the provider refused the refresh ({exc.error}); nothing stored changed"
            )
        except (ProviderUnreachable, ProviderUnavailable) as exc:
            VAULT_REFRESH.labels(key[0], "unavailable").inc()
            log.warning("connection %s: refresh failed: %s", key[0], exc)
            self.audit_later(actor, "credentials.refresh", *key, "provider_unavailable")
            return ProviderUnavailable()
        rotated = answer.refresh_token is not None and answer.refresh_token != refresh
        stored = session.save(
            self._entry(key, answer.refresh_token or refresh, answer),
            actor,
            "credentials.refresh",
            {"outcome": "refreshed", "rotated": rotated},
        )
        VAULT_REFRESH.labels(key[0], "refreshed").inc()
        assert stored.access_expires_at is not None
        return AccessToken(answer.access_token, answer.token_type, stored.access_expires_at)

    # --- PUT / DELETE credentials -------------------------------------------------------------

    async def put(
        self, grants: GrantSet, actor: str, connection_id: str, user_id: str, body: dict[str, Any]
    ) -> None:
        await self.allowed(grants, actor, "credentials:write", connection_id, user_id)
        refresh = body.get("refreshToken")
        if not isinstance(refresh, str) or not refresh or len(refresh) > 8192:
            raise InvalidRequest("refreshToken: required, a string")
        access = body.get("accessToken")
        expires = body.get("expiresIn")
        if access is not None and (not isinstance(access, str) or not access or len(access) > 16384):
            raise InvalidRequest("accessToken: expected a string")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int) or expires < 0):
            raise InvalidRequest("expiresIn: expected whole seconds")
        # An access token without its lifetime is not cached: the first read refreshes.
        answer = TokenAnswer(access, "Bearer", expires, None) if access and expires is not None else None
        await self.store_tokens((connection_id, user_id), refresh, answer, actor, "credentials.put")

    async def store_tokens(
        self, key: tuple[str, str], refresh: str, answer: TokenAnswer | None, actor: str, action: str
    ) -> None:
        def write() -> None:
            with self.store.vault_session(*key) as session:
                session.save(self._entry(key, refresh, answer), actor, action, {"outcome": "stored"})

        try:
            await self.run(write)
        except Missing:  # replaced a row that its connection's deletion removed meanwhile
            raise NotFound(f"no connection {key[0]}") from None
        self._forget(key)

    async def delete(self, grants: GrantSet, actor: str, connection_id: str, user_id: str) -> None:
        connection = await self.allowed(grants, actor, "credentials:write", connection_id, user_id)
        key = (connection_id, user_id)

        def forget() -> bool:
            with self.store.vault_session(*key) as session:
                if session.entry is None:
                    return False
                # Revoked at the provider first, under the lock, so no refresh can rotate the
                # token between the revocation and the delete. One that does not open (see
                # _open) is deleted all the same: there is nothing to revoke it with.
                try:
                    refresh = self.sealer.open(
                        session.entry.sealed_refresh, binding(REFRESH_TOKEN, *key)
                    ).decode()
                except SealError:
                    refresh = None
                revoked = False
                if connection.revocation_url is not None and refresh is not None:
                    try:
                        revoked = self.provider.revoke(connection, self.secret_of(connection), refresh)
                    except GatewayError:
                        revoked = False
                return session.delete(actor, {"revoked": revoked, "outcome": "deleted"})

        if not await self.run(forget):
            raise NotFound(f"no credential stored for user {user_id} at connection {connection_id}")
        self._forget(key)
