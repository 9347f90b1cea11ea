"""The worker's in-memory view of the identity store, kept fresh by the change feed.

The hot path reads only from here. A miss goes to the store in a thread (so the event loop never
waits on a disk or a socket); an unknown key id is remembered briefly, so a flood of random ids
cannot hammer the store. Ids are checked against their generated formats before any lookup
(issue 9, defect 3): what a stranger sends reaches the store only when it could be a real id, and
every remembered miss is a fixed-size id, so the negative caches are bounded in bytes too. Every worker and replica polls the store's change feed every
`poll_interval` (default 0.25 s) and drops what a change touches, which bounds how long a
revoked key or grant can still work to well under a second.

Freshness is checked on the request path, not only by the poller (issue 9, defect 10): every
read here first asks whether a poll that started within the last second has succeeded, and
refuses with StoreError (503) when none has. A poll blocked on an unreachable store therefore
cannot keep a revoked credential working; and refusing needs no store call, so it is immediate.
The feed is polled on a thread of its own, so request-path misses never queue ahead of it.

Invalidation uses generations: each client has one, and grants have one global generation.
Anything cached on a client's behalf (a verified credential, a decision) remembers the
generations it was made under and is ignored once either has moved on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from gateway.background import every
from gateway.cache import ExpiringCache
from gateway.crypto import CLIENT_ID, KEY_ID, PUBLIC_KEY_ID, SECRET_ID
from gateway.identity.grants import GrantSet, compile_grants
from gateway.identity.trusted import TrustedIndex, parse_credential_id
from gateway.models import AccessKey, Change, Client, ClientPublicKey, ClientSecret, TrustedIdentity
from gateway.store import Store, StoreError

log = logging.getLogger("gateway.identity")

_ABSENT = object()
_T = TypeVar("_T")
FRESHNESS_BOUND = 1.0  # seconds: contract §2, a revocation is in force everywhere within one
READ_TIMEOUT = 1.0  # a request-path store call answered by then, or refused (503)


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """A client's active access keys and registered public keys (its JWKS, and the keys a
    private_key_jwt assertion may be signed with)."""

    access: tuple[AccessKey, ...]
    public: tuple[ClientPublicKey, ...]


class Directory:
    def __init__(
        self,
        store: Store,
        ttl: float = 300.0,
        negative_ttl: float = 5.0,
        maxsize: int = 200_000,
        poll_interval: float = 0.25,
        configured_identities: tuple[TrustedIdentity, ...] = (),
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._keys: ExpiringCache[str, AccessKey] = ExpiringCache(maxsize, ttl)
        self._unknown_keys: ExpiringCache[str, bool] = ExpiringCache(maxsize, negative_ttl)
        self._clients: ExpiringCache[str, object] = ExpiringCache(maxsize, ttl)
        self._grants: ExpiringCache[str, GrantSet] = ExpiringCache(maxsize, ttl)
        self._credentials: ExpiringCache[str, object] = ExpiringCache(maxsize, ttl)
        self._client_keys: ExpiringCache[str, tuple[tuple[int, int], ClientKeys]] = ExpiringCache(
            maxsize, ttl
        )
        self._revoked_tokens: dict[str, int] = {}
        # Called (awaited) after a poll that saw the signing keys change.
        self.on_signing_change: list[Callable[[], Awaitable[None]]] = []
        # Trusted identities (the store's and the config file's), swapped whole on a change;
        # `_trusted_stale` after losing the change feed, so the next use reloads (or fails).
        self._configured_identities = configured_identities
        self._trusted = TrustedIndex(configured_identities)
        self._trusted_stale = True
        self._trusted_lock = asyncio.Lock()
        self.on_trusted_change: list[Callable[[TrustedIndex], None]] = []
        # Other services' caches that follow the feed: kind → callbacks given each change;
        # `on_clear` callbacks are given None when everything must be forgotten.
        self.on_change: dict[str, list[Callable[[Change | None], None]]] = {}
        self.on_clear: list[Callable[[Change | None], None]] = []
        self._client_generation: defaultdict[str, int] = defaultdict(int)
        self._cleared = 0
        self.grants_generation = 0
        self._key_generation = 0
        # Bumped by every change applied: a result computed while it moved may be stale and
        # must not be cached (the change could have landed between our read and our insert).
        self.epoch = 0
        self.last_seq = 0
        # When the last successful poll STARTED: every change committed before it is applied.
        self._fresh_as_of = time.monotonic()
        self._enforced = False  # from start(): a directory nobody follows (the CLI) is not gated
        # Monotonic: until when the feed counts as fresh (`_fresh_as_of` + FRESHNESS_BOUND once
        # enforced): what ensure_fresh, and the decision memo's check of an unchanged epoch
        # (Generations), compare the clock with.
        self.fresh_until = math.inf
        self._feed_thread = ThreadPoolExecutor(1, thread_name_prefix="change-feed")
        # Set while the signing-change callbacks still owe a run (one failed): retried at every
        # poll until they succeed, without holding up the revocations the feed carries.
        self._signing_pending = False

    # --- reads (hot path on a hit) ------------------------------------------------------------

    def ensure_fresh(self) -> None:
        """Raise StoreError unless the change feed was read within FRESHNESS_BOUND."""
        now = time.monotonic()
        if now > self.fresh_until:
            behind = now - self.fresh_until + FRESHNESS_BOUND
            raise StoreError(f"the change feed has not been read for {behind:.1f} s")

    async def _read(self, call: Callable[..., _T], *args: object) -> _T:
        """A request-path store call: refused at once when the feed is stale, bounded in time."""
        self.ensure_fresh()
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, *args), READ_TIMEOUT)
        except TimeoutError:
            raise StoreError(f"the store did not answer within {READ_TIMEOUT:g} s") from None

    async def _feed(self, call: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._feed_thread, call, *args)

    def generation(self, client_id: str) -> tuple[int, int]:
        self.ensure_fresh()
        return self._client_stamp(client_id), self.grants_generation

    def _client_stamp(self, client_id: str) -> int:
        # A read never adds an entry (ids strangers send must not grow memory); clear() moves
        # every client's stamp at once through `_cleared`.
        return self._cleared + self._client_generation.get(client_id, 0)

    async def key(self, key_id: str) -> AccessKey | None:
        self.ensure_fresh()
        if not KEY_ID.match(key_id):
            return None
        key = self._keys.get(key_id)
        if key is not None:
            return key
        if key_id in self._unknown_keys:
            return None
        generation = self._key_generation
        key = await self._read(self.store.get_access_key, key_id)
        if generation == self._key_generation:
            if key is None:
                self._unknown_keys[key_id] = True
            else:
                self._keys[key_id] = key
        return key

    async def client(self, client_id: str) -> Client | None:
        self.ensure_fresh()
        if not CLIENT_ID.match(client_id):
            return None
        found = self._clients.get(client_id, _ABSENT)
        if found is _ABSENT:
            generation = self._client_stamp(client_id)
            found = await self._read(self.store.get_client, client_id)
            if generation == self._client_stamp(client_id):  # no change raced the read
                self._clients[client_id] = found
        return found if isinstance(found, Client) else None

    async def grant_set(self, client_id: str) -> GrantSet:
        self.ensure_fresh()
        grants = self._grants.get(client_id)
        if grants is None:
            generation = self.generation(client_id)
            grants = await self._read(self.load_grants, client_id)
            if generation == self.generation(client_id):
                self._grants[client_id] = grants
        return grants

    async def credential_active(self, client_id: str, credential_id: str) -> bool:
        """Whether the access key, client secret or registered public key a token was issued on
        still belongs to the client and is neither revoked nor expired."""
        return await self.credential_expiry(client_id, credential_id) is not False

    async def credential_expiry(self, client_id: str, credential_id: str) -> float | bool | None:
        """False when the credential a token was issued on is gone (revoked, expired, another
        client's); else when it expires (epoch seconds), None for never. A token dies with the
        credential it was issued on, so a cached verification must not outlive it either."""
        if credential_id.startswith("identity:"):
            return None if await self.trusted_identity_active(client_id, credential_id) else False
        now = time.time()
        if credential_id.startswith("acc_"):
            key = await self.key(credential_id)
            if key is None or not key.active or key.client_id != client_id or key.expired(now):
                return False
            return key.expires_epoch
        if not (SECRET_ID.match(credential_id) or PUBLIC_KEY_ID.match(credential_id)):
            return False
        found = self._credentials.get(credential_id, _ABSENT)
        if found is _ABSENT:
            generation = self._key_generation
            lookup = (
                self.store.get_client_secret
                if credential_id.startswith("sec_")
                else self.store.get_public_key
            )
            found = await self._read(lookup, credential_id)
            if generation == self._key_generation:
                self._credentials[credential_id] = found
        if not isinstance(found, ClientSecret | ClientPublicKey) or not found.active:
            return False
        if found.client_id != client_id:
            return False
        if isinstance(found, ClientSecret):
            return False if found.expired(now) else found.expires_epoch
        return None

    async def client_keys(self, client_id: str, kid: str | None = None) -> ClientKeys:
        """The client's active, unexpired keys; cached until a key or the client changes (the
        change feed moves the stamps), so public JWKS requests and assertions do not each query
        the store. `kid`, when a caller names the key it needs: a key created a moment ago on
        another worker, not yet in the cached list, is found (through the key cache, whose
        misses are remembered) so a new key works at once."""
        if not CLIENT_ID.match(client_id):
            return ClientKeys((), ())
        stamp = (self._key_generation, self._client_stamp(client_id))
        cached = self._client_keys.get(client_id)
        keys = cached[1] if cached is not None and cached[0] == stamp else None
        named = kid is not None and KEY_ID.match(kid)
        if keys is not None and named and all(k.key_id != kid for k in keys.access):
            key = await self.key(str(kid))
            if key is not None and key.active and key.client_id == client_id:
                keys = None  # newer than the cached list: read it again
        if keys is None:
            keys = await self._read(self.read_client_keys, client_id)
            if stamp == (self._key_generation, self._client_stamp(client_id)):
                self._client_keys[client_id] = (stamp, keys)
        now = time.time()  # a cached list outlives a key's expiry, which no change announces
        if any(k.expired(now) for k in keys.access):
            keys = ClientKeys(tuple(k for k in keys.access if not k.expired(now)), keys.public)
        return keys

    def read_client_keys(self, client_id: str) -> ClientKeys:
        """The client's active keys from the store (blocking), bypassing the cache."""
        return ClientKeys(
            tuple(self.store.list_access_keys(client_id)), tuple(self.store.list_public_keys(client_id))
        )

    async def trusted(self) -> TrustedIndex:
        """The index of trusted identities, reloaded first when it may be stale."""
        self.ensure_fresh()
        if self._trusted_stale:
            async with self._trusted_lock:  # requests that find it stale wait for one reload
                if self._trusted_stale:
                    await self._reload_trusted_now()
        return self._trusted

    async def trusted_now(self) -> TrustedIndex:
        """The index once the change feed has been read past this moment, for a verified token
        the cached index cannot place: an entry made a moment ago through another worker works
        at once (as a new access key does) instead of on this worker's next poll. It costs the
        caller at most about one poll interval of waiting and the store nothing, whoever sends
        such tokens."""
        if not self._enforced:  # nobody follows the feed here (the CLI): read the store
            await self._reload_trusted()
            return self._trusted
        since = time.monotonic()
        deadline = since + FRESHNESS_BOUND
        while self._fresh_as_of < since and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return await self.trusted()

    async def _reload_trusted(self) -> None:
        async with self._trusted_lock:
            await self._reload_trusted_now()

    async def _reload_trusted_now(self) -> None:
        epoch = self.epoch
        stored = await asyncio.to_thread(self.store.list_trusted_identities)
        configured = {e.identity_id for e in self._configured_identities}
        index = TrustedIndex(
            [*self._configured_identities, *(e for e in stored if e.identity_id not in configured)]
        )
        self._trusted = index
        if epoch == self.epoch:  # else the feed was lost (or moved) meanwhile: read again next time
            self._trusted_stale = False
        for callback in self.on_trusted_change:
            callback(index)

    async def trusted_identity_active(self, client_id: str, credential_id: str) -> bool:
        """Whether the entry a gateway token was exchanged under still exists, maps to the same
        client and has not changed since (any change ends the tokens of its older revisions)."""
        parsed = parse_credential_id(credential_id)
        if parsed is None:
            return False
        entry = (await self.trusted()).current(parsed[0])
        if entry is None or entry.revision < parsed[1]:  # this worker may be a poll behind
            entry = (await self.trusted_now()).current(parsed[0])
        return entry is not None and entry.client_id == client_id and entry.revision == parsed[1]

    def token_revoked(self, jti: str) -> bool:
        self.ensure_fresh()
        return jti in self._revoked_tokens

    def load_grants(self, client_id: str) -> GrantSet:
        records = self.store.records_for_user(client_id, with_users=False)
        roles = self.store.get_roles(r for rec in records for st in rec.statements for r in st.roles)
        return compile_grants(records, roles)

    # --- invalidation ---------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        self.epoch += 1
        if change.kind == "client":
            self._client_generation[change.ref] += 1
            self._clients.pop(change.ref, None)
            self._grants.pop(change.ref, None)
        elif change.kind in ("key", "credential"):
            self._key_generation += 1
            self._keys.pop(change.ref, None)
            self._credentials.pop(change.ref, None)
            self._unknown_keys.pop(change.ref, None)
        elif change.kind == "grants":
            self.grants_generation += 1
            self._grants.clear()
        elif change.kind == "signing":
            # Cached verifications of gateway tokens must meet the new key ring: moving the
            # generation every cached result is checked against makes them verify again.
            self.grants_generation += 1
        elif change.kind in self.on_change:
            for callback in self.on_change[change.kind]:
                callback(change)
        elif change.kind not in ("token", "identity"):  # identity: reloaded by poll()
            self.clear()

    def clear(self) -> None:
        """Forget everything (fail closed when the change feed cannot be followed)."""
        self.epoch += 1
        self._key_generation += 1
        caches = (
            self._keys,
            self._unknown_keys,
            self._clients,
            self._grants,
            self._credentials,
            self._client_keys,
        )
        for cache in caches:
            cache.clear()
        self._cleared += 1
        self.grants_generation += 1
        self._trusted_stale = True
        for callback in self.on_clear:
            callback(None)

    async def start(self) -> None:
        started = time.monotonic()
        self.last_seq = await self._feed(self.store.latest_change)
        await self._reload_trusted()
        self._revoked_tokens = await self._feed(self.store.revoked_tokens, int(time.time()))
        self._fresh_as_of, self._enforced = started, True
        self.fresh_until = started + FRESHNESS_BOUND

    async def poll(self) -> int:
        """Apply new changes; returns how many."""
        started = time.monotonic()
        changes = await self._feed(self.store.changes_since, self.last_seq)
        kinds = {c.kind for c in changes}
        if "token" in kinds:
            # Before the changes apply: once they drop the cached verifications, the next
            # check of a revoked token must already find it in this set.
            self._revoked_tokens = await self._feed(self.store.revoked_tokens, int(time.time()))
        if "identity" in kinds or self._trusted_stale:
            # Before the client changes that come with it drop the cached verifications.
            await self._reload_trusted()
        for change in changes:
            self.apply(change)
            self.last_seq = change.seq
        # The feed is read and applied: revocations are in force whatever the callbacks do.
        self._fresh_as_of = started
        if self._enforced:
            self.fresh_until = started + FRESHNESS_BOUND
        if "signing" in kinds or self._signing_pending:
            self._signing_pending = True
            for callback in self.on_signing_change:
                await callback()
            self._signing_pending = False
        return len(changes)

    @property
    def following(self) -> bool:
        """Whether the change feed was read within the last second (readiness)."""
        return time.monotonic() - self._fresh_as_of <= FRESHNESS_BOUND

    def _fail_closed(self) -> None:
        if time.monotonic() - self._fresh_as_of > FRESHNESS_BOUND:
            # A revocation made elsewhere could be going unseen: after a second without the
            # feed, stop trusting what is cached (contract §2's one-second bound).
            self.clear()

    async def follow(self) -> None:
        """Poll the change feed forever; no exception ends it (issue 9, defect 1)."""
        await every(
            self.poll_interval,
            self.poll,
            what="change feed",
            log=log,
            on_error=self._fail_closed,
            expected=(StoreError,),
        )
