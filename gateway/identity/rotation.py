"""Signing key rotation on a schedule, run by one worker per replica (`group.leader`); the store
makes it happen once across replicas.

- A `next` key always exists, so it is published (in the JWKS) before it signs.
- When the current key is older than `rotation_interval` and the next one has been published for
  at least `jwks_max_age` (so every cached JWKS holds it), the next becomes current.
- A retired key stays published until every token it signed has expired (the longest token
  lifetime plus leeway), then it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from gateway import group
from gateway.background import every
from gateway.config import Config
from gateway.crypto import Sealer
from gateway.errors import ConflictError
from gateway.identity.signing import KeyRing, RingHolder, new_signing_key
from gateway.models import SigningKey
from gateway.store import Store, StoreError

log = logging.getLogger("gateway.signing")


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def published_for(key: SigningKey) -> float:
    """Seconds since a key was published (created)."""
    return time.time() - _epoch(key.created_at)


def rotate_now(store: Store, sealer: Sealer, config: Config, actor: str, force: bool, override: str) -> None:
    """A rotation asked for by hand (`gateway keys rotate-signing`, the console): the next key
    starts signing at once. Refused (ConflictError, whose message ends with `override`: how to
    force it) while the next key has been published for less than `tokens.jwks_max_age`, as peers
    with a cached JWKS would refuse its tokens, unless `force`."""
    upcoming = next((k for k in store.signing_keys() if k.state == "next"), None)
    max_age = config.tokens.jwks_max_age
    if upcoming is not None and not force and published_for(upcoming) < max_age:
        raise ConflictError(
            f"the next key {upcoming.kid} has been published for {published_for(upcoming):.0f} s, less than "
            f"tokens.jwks_max_age ({max_age:.0f} s): peers with a cached JWKS would refuse its tokens. "
            f"Wait, or {override}."
        )
    store.rotate_signing_keys(new_signing_key(sealer, config.tokens.algorithm, "next"), actor)


class Rotation:
    def __init__(self, store: Store, sealer: Sealer, holder: RingHolder, config: Config) -> None:
        self.store = store
        self.sealer = sealer
        self.holder = holder
        self.tokens = config.tokens

    async def reload(self) -> None:
        keys = await asyncio.to_thread(self.store.signing_keys)
        self.holder.ring = KeyRing(keys, self.sealer)

    def tick(self) -> bool:
        """One scheduling step (blocking; run in a thread). Returns whether anything changed."""
        ring = self.holder.ring
        now = time.time()
        changed = False
        if ring.next is None:
            changed |= self.store.add_next_signing_key(
                new_signing_key(self.sealer, self.tokens.algorithm, "next")
            )
        elif (
            now - _epoch(ring.current.activated_at) >= self.tokens.rotation_interval
            and published_for(ring.next) >= self.tokens.jwks_max_age
        ):
            new_next = new_signing_key(self.sealer, self.tokens.algorithm, "next")
            if self.store.rotate_signing_keys(new_next, "rotation", only_if_current=ring.current.kid):
                log.info("signing key rotated: %s is current", ring.next.kid)
                changed = True
        keep = self.tokens.max_lifetime + self.tokens.leeway + self.tokens.jwks_max_age
        cutoff = datetime.now(UTC) - timedelta(seconds=keep)
        if self.store.drop_retired_signing_keys(cutoff.strftime("%Y-%m-%dT%H:%M:%S.000Z")):
            changed = True
        self.store.forget_expired(int(now))
        # Workers poll the feed every 0.25 s; an hour of history is plenty for any of them.
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        self.store.prune_changes(hour_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        return changed

    async def step(self) -> None:
        # One worker per replica writes (issue 9, defect 9); the others learn of a rotation from
        # the change feed, whose signing-change callback reloads their key ring.
        if group.leader() and await asyncio.to_thread(self.tick):
            await self.reload()

    async def run(self, interval: float = 30.0) -> None:
        """Rotate on schedule forever; no exception ends it (issue 9, defect 1)."""
        await every(
            interval,
            self.step,
            what="signing key rotation",
            log=log,
            expected=(StoreError,),
            first_delay=False,
        )
