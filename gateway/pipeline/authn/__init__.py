"""Authentication: one authenticator per credential kind, tried in turn.

"Not mine" is not "denied": an authenticator that does not recognise a credential returns None
and the next one tries; one that recognises it and finds it bad raises InvalidToken, which ends
the chain with 401. A credential nobody recognises is refused too: the chain fails closed.

Verified credentials are cached by a hash of the credential (never the credential itself) until
they expire or the client's generation moves (any change to the client or its keys), so a warm
request costs one SHA-256 and a dictionary lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.cache import ExpiringCache
from gateway.crypto import fingerprint
from gateway.errors import InvalidRequest, InvalidToken
from gateway.metrics import AUTH_FAILURES
from gateway.models import Identity
from gateway.presented import Presented


@dataclass(frozen=True, slots=True)
class Verified:
    identity: Identity
    expires_at: float | None = None  # epoch seconds; None: until the client changes
    verified_at: float = 0.0  # monotonic, set by the chain: reuse is bounded from here (cache_ttl)


class Authenticator(Protocol):
    kind: str

    async def authenticate(self, presented: Presented) -> Verified | None:
        """The caller's identity; None when the credential is not of this kind; raises
        InvalidToken when it is of this kind but not valid."""
        ...


class Generations(Protocol):
    """What cached answers are checked against (gateway.identity.directory.Directory)."""

    # Moves with every change applied: while it stands still (and the feed is fresh, before
    # `fresh_until`, monotonic), no generation has moved either.
    epoch: int
    fresh_until: float

    def generation(self, client_id: str) -> tuple[int, int]:
        """The client's and the grants' generation; StoreError when the feed is stale."""
        ...


def bearer_credential(authorization: list[bytes], query_string: bytes) -> str | None:
    """The one bearer credential of a request, or None.

    Two credentials (two Authorization headers, or a header and an `access_token` query
    parameter, RFC 6750 §2) are refused: which one would count is exactly the kind of question
    an attacker likes to ask. A credential in the query string alone is refused too: URLs end up
    in logs.
    """
    in_query = b"access_token=" in query_string and any(
        part.startswith(b"access_token=") for part in query_string.split(b"&")
    )
    if len(authorization) > 1 or (authorization and in_query):
        raise InvalidRequest("more than one credential in the request")
    if in_query:
        raise InvalidRequest("send the credential in the Authorization header, not the query string")
    if not authorization:
        return None
    raw = authorization[0]
    if raw.startswith(b"Bearer ") and raw.isascii():  # the common spelling, parsed in one step
        credential = raw[7:].decode().strip()
        if credential:
            return credential
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidToken("malformed Authorization header") from None
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise InvalidToken("expected Authorization: Bearer <credential>")
    return credential


class AuthenticatorChain:
    def __init__(
        self,
        authenticators: Sequence[Authenticator] = (),
        generations: Generations | None = None,
        cache_size: int = 100_000,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authenticators = tuple(authenticators)
        self.generations = generations
        self.clock = clock
        self._cache: ExpiringCache[bytes, tuple[Verified, tuple[int, int]]] = ExpiringCache(
            cache_size, cache_ttl
        )

    async def authenticate(self, credential: str | None, accepted: frozenset[str]) -> Identity:
        return (await self.verify(credential, accepted)).identity

    async def verify(self, credential: str | None, accepted: frozenset[str]) -> Verified:
        """The caller's identity and until when the credential proves it."""
        try:
            return await self._verify(credential, accepted)
        except InvalidToken as exc:
            AUTH_FAILURES.labels(exc.reason).inc()
            raise

    async def _verify(self, credential: str | None, accepted: frozenset[str]) -> Verified:
        if credential is None:
            raise InvalidToken(presented=False, reason="missing")
        generations = self.generations
        key = fingerprint(credential)
        hit = self._cache.get(key)
        if hit is not None:
            verified, generation = hit
            client_id = verified.identity.client_id
            if (verified.expires_at is None or self.clock() < verified.expires_at) and (
                generations is None or client_id is None or generations.generation(client_id) == generation
            ):
                return _accept(verified, accepted)
            self._cache.pop(key, None)
        epoch = generations.epoch if generations is not None else 0
        presented = Presented(credential)
        for authenticator in self.authenticators:
            found = await authenticator.authenticate(presented)
            if found is None:
                continue
            found = replace(found, verified_at=time.monotonic())
            client_id = found.identity.client_id
            if generations is not None and client_id is not None and generations.epoch == epoch:
                # Cache only when no change landed while we verified: it might have revoked this.
                self._cache[key] = (found, generations.generation(client_id))
            return _accept(found, accepted)
        raise InvalidToken("unrecognised credential", reason="unrecognised")


def _accept(verified: Verified, accepted: frozenset[str]) -> Verified:
    method = verified.identity.method
    if method not in accepted:
        raise InvalidToken(f"{method} credentials are not accepted on this route", reason="wrong_kind")
    return verified
