"""The decision's memo (gateway.pipeline.decide.Remembered) and `grant_now`, its sync front: a warm
request skips authentication, authorization and the limiter's lookups only while every rule of
those stages' own caches would still give the same answer."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway import metrics
from gateway.errors import InvalidRequest
from gateway.models import Identity
from gateway.pipeline.authn import Verified
from gateway.pipeline.decide import Remembered, grant, grant_now
from gateway.pipeline.mutate import Mutator
from gateway.policy.model import Route, parse_template
from gateway.quota import RateLimit
from gateway.store import StoreError
from gateway.usage import UsageRecorder

CREDENTIAL = "sc_example.credential"
CALLER = Identity(method="access_key", client_id="cli_1", subject="cli_1", scopes=frozenset({"a"}))


class Generations:
    """The directory's generations, as it moves them: every change moves the epoch too."""

    def __init__(self) -> None:
        self.epoch = 0
        self.stamps: dict[str, int] = {}
        self.grants = 0
        self.fresh_until = math.inf
        self.lookups = 0

    def generation(self, client_id: str) -> tuple[int, int]:
        self.lookups += 1
        if time.monotonic() >= self.fresh_until:
            raise StoreError("the change feed has not been read for 1.2 s")
        return self.stamps.get(client_id, 0), self.grants

    def change_client(self, client_id: str) -> None:
        self.epoch += 1
        self.stamps[client_id] = self.stamps.get(client_id, 0) + 1

    def change_grants(self) -> None:
        self.epoch += 1
        self.grants += 1

    def go_stale(self) -> None:
        self.fresh_until = time.monotonic()


class Chain:
    """The authenticator chain, counting full verifications."""

    def __init__(self, generations: Generations, expires_at: float | None = None) -> None:
        self.generations, self.expires_at, self.calls = generations, expires_at, 0
        self.identity = CALLER
        self.verified_ago = 0.0  # as if the chain had verified it this long ago (its cache)
        self.during: Any = None  # run while "verifying", to land a change mid-decision

    async def verify(self, credential: str | None, accepted: frozenset[str]) -> Verified:
        self.calls += 1
        if self.during is not None:
            self.during()
        return Verified(self.identity, self.expires_at, verified_at=time.monotonic() - self.verified_ago)


class Authz:
    async def authorize(self, route: Route, identity: Identity, params: dict[str, str]) -> None: ...


@dataclass
class Limits:
    client_limit_of: RateLimit | None = None
    checked: int = 0
    asked: int = 0

    async def check(self, identity: Identity, route: Route) -> tuple[tuple[bytes, bytes], ...]:
        self.checked += 1
        return ()

    async def applies(self, identity: Identity, route: Route) -> bool:
        self.asked += 1
        return route.rate_limit is not None or self.client_limit_of is not None


@dataclass
class Stages:
    generations: Generations = field(default_factory=Generations)
    limits: Limits = field(default_factory=Limits)
    usage: UsageRecorder | None = None
    mutate: Mutator = field(default_factory=lambda: Mutator(None))
    size: int = 100
    ttl: float = 300.0

    def __post_init__(self) -> None:
        self.authn = Chain(self.generations)
        self.authz = Authz()
        self.remembered = Remembered(self.generations, self.mutate, self.usage, self.size, self.ttl)


@dataclass
class Match:
    route: Route
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Policy:
    upstreams: dict[str, Any] = field(default_factory=lambda: {"up": type("U", (), {"name": "up"})()})


def route(rate_limit: RateLimit | None = None) -> Route:
    return Route("r", "", None, parse_template("/x"), "up", frozenset({"access_key"}), rate_limit=rate_limit)


def decide(
    stages: Stages,
    match: Match,
    path: str = "/x",
    method: str = "GET",
    connection: dict[str, Any] | None = None,
    credential: str = CREDENTIAL,
) -> tuple[Any, int]:
    """grant_now, else grant (as the proxy does): the answer and how many full verifications."""
    before = stages.authn.calls
    authorization = [f"Bearer {credential}".encode()]
    granted = grant_now(stages, Policy(), match, method, path, authorization, b"", connection)  # type: ignore[arg-type]
    if granted is None:
        granted = asyncio.run(grant(stages, Policy(), match, method, path, authorization, b""))  # type: ignore[arg-type]
    return granted, stages.authn.calls - before


def test_a_warm_request_is_answered_without_a_coroutine_and_keeps_its_headers() -> None:
    stages, match = Stages(), Match(route())
    first, verified = decide(stages, match)
    assert verified == 1
    second, verified = decide(stages, match)
    assert verified == 0
    assert second.identity is first.identity and second.headers == first.headers
    assert (b"x-gateway-client-id", b"cli_1") in second.headers


def test_another_path_method_or_route_is_decided_again() -> None:
    stages, match = Stages(), Match(route())
    decide(stages, match)
    assert decide(stages, match, path="/y")[1] == 1
    assert decide(stages, match, method="POST")[1] == 1
    assert decide(stages, Match(route()))[1] == 1  # a reload's new Route object, same id


def test_any_change_to_the_client_or_the_grants_ends_the_memo() -> None:
    stages, match = Stages(), Match(route())
    decide(stages, match)
    stages.generations.change_client("cli_1")  # a key revoked, a token revoked, the client changed
    assert decide(stages, match)[1] == 1
    assert decide(stages, match)[1] == 0
    stages.generations.change_grants()  # grants or signing keys changed, or the feed was lost
    assert decide(stages, match)[1] == 1


def test_the_credential_expiry_is_honoured_to_the_second() -> None:
    stages, match = Stages(), Match(route())
    stages.authn.expires_at = time.time() + 0.2
    decide(stages, match)
    assert decide(stages, match)[1] == 0
    deadline = time.time() + 5
    while time.time() < stages.authn.expires_at and time.time() < deadline:
        time.sleep(0.05)
    assert decide(stages, match)[1] == 1


def test_a_change_landing_during_the_decision_is_not_remembered() -> None:
    stages, match = Stages(), Match(route())

    def change() -> None:
        stages.generations.epoch += 1

    stages.authn.during = change
    decide(stages, match)
    stages.authn.during = None
    assert decide(stages, match)[1] == 1  # the first was not kept
    assert decide(stages, match)[1] == 0


@pytest.mark.parametrize("where", ["route", "client"])
def test_rate_limited_requests_always_reach_the_limiter(where: str) -> None:
    limit = RateLimit(10, 60)
    stages = Stages(limits=Limits(client_limit_of=limit if where == "client" else None))
    match = Match(route(rate_limit=limit if where == "route" else None))
    for _ in range(3):
        decide(stages, match)
    assert stages.limits.checked == 3
    assert stages.authn.calls == 3


def test_a_second_credential_is_refused_though_the_first_is_remembered() -> None:
    stages, match = Stages(), Match(route())
    decide(stages, match)
    authorization = [f"Bearer {CREDENTIAL}".encode()]
    for query in (b"access_token=x", b"a=1&access_token=x"):
        assert grant_now(stages, Policy(), match, "GET", "/x", authorization, query) is None  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest):
            asyncio.run(grant(stages, Policy(), match, "GET", "/x", authorization, query))  # type: ignore[arg-type]
    two = authorization * 2
    assert grant_now(stages, Policy(), match, "GET", "/x", two, b"") is None  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        asyncio.run(grant(stages, Policy(), match, "GET", "/x", two, b""))  # type: ignore[arg-type]


class UsageStore:
    def __init__(self) -> None:
        self.batches: list[tuple[dict[Any, tuple[int, int]], dict[str, str]]] = []

    def write_usage(self, counts: dict[Any, tuple[int, int]], last_used: dict[str, str]) -> None:
        self.batches.append((dict(counts), dict(last_used)))


def allowed(batch: tuple[dict[Any, tuple[int, int]], dict[str, str]]) -> int:
    return sum(a for a, _ in batch[0].values())


def test_every_remembered_request_is_counted_in_the_batch_it_landed_in() -> None:
    """Hits count through a Tally, not the recorder's dicts: a flush swaps the batch, and the hits
    after it must land in the next batch, none lost and none counted twice."""
    store = UsageStore()
    stages, match = Stages(usage=UsageRecorder(store)), Match(route())  # type: ignore[arg-type]
    caller = Identity(method="access_key", client_id="cli_1", subject="cli_1", credential_id="acc_1")
    stages.authn.identity = caller
    for _ in range(4):
        decide(stages, match)  # one full decision, three hits
    asyncio.run(stages.usage.flush())
    for _ in range(2):
        assert decide(stages, match)[1] == 0
    asyncio.run(stages.usage.flush())
    assert [allowed(b) for b in store.batches] == [4, 2]
    assert all(list(b[1]) == ["acc_1"] for b in store.batches)  # last use recorded in each batch


def test_a_tally_is_not_used_past_its_minute() -> None:
    """The hour of a count and the minute of a last use are those of the Tally's minute: once it
    is over, the next hit counts afresh (under the new hour's key when the hour turned)."""
    usage = UsageRecorder(UsageStore())  # type: ignore[arg-type]
    stages, match = Stages(usage=usage), Match(route())

    def counted() -> int:  # over every hour's key: the hour may turn during the test
        return sum(allowed for allowed, _ in usage._counts.values())

    decide(stages, match)
    decide(stages, match)
    (entry,) = stages.remembered._entries.values()
    first = entry.tally
    assert first is not None and counted() == 2
    first.until = time.time()  # as if the minute had just ended
    decide(stages, match)
    renewed = entry.tally
    assert renewed is not None and renewed is not first and renewed.until > first.until
    assert counted() == 3


def test_a_public_route_is_granted_the_same_answer_until_a_reload() -> None:
    stages, policy = Stages(), Policy()
    public = Route("p", "", None, parse_template("/p"), "up", frozenset())
    first = grant_now(stages, policy, Match(public), "GET", "/p", [], b"")  # type: ignore[arg-type]
    assert first is not None and first.decision == "public"
    assert grant_now(stages, policy, Match(public), "GET", "/p", [], b"") is first  # type: ignore[arg-type]
    assert first.lines == b"x-gateway-auth-method: none\r\nx-gateway-route: p\r\n"
    reloaded = Route("p", "", None, parse_template("/p"), "up", frozenset())
    assert grant_now(stages, policy, Match(reloaded), "GET", "/p", [], b"").route is reloaded  # type: ignore[arg-type,union-attr]


def test_no_longer_than_the_verification_it_rests_on_may_be_reused() -> None:
    """A credential the chain verified 290 s ago (its cache answered) backs a new path's entry for
    the 10 s its verification may still be reused, not for another credential_ttl."""
    stages, match = Stages(ttl=300.0), Match(route())
    stages.authn.verified_ago = 299.8
    decide(stages, match)
    assert decide(stages, match)[1] == 0
    deadline = time.monotonic() + 5
    while decide(stages, match)[1] == 0:
        assert time.monotonic() < deadline, "the memo outlived the verification's reuse bound"
        time.sleep(0.05)
    stages.authn.verified_ago = 0.0
    assert decide(stages, match)[1] == 0  # verified afresh: remembered again


def test_a_feed_gone_stale_during_the_decision_does_not_undo_it() -> None:
    """Remembering is best effort: a decision made is answered even when the stamp can no longer
    be read (the request was authorized and counted), and nothing is remembered."""
    stages, match = Stages(), Match(route())

    def stale() -> None:
        stages.generations.go_stale()

    stages.authn.during = stale
    granted, verified = decide(stages, match)
    assert verified == 1 and granted.decision == "allow"
    stages.authn.during = None
    stages.generations.fresh_until = math.inf
    assert decide(stages, match)[1] == 1


def test_size_zero_decides_every_request_in_full() -> None:
    stages, match = Stages(size=0), Match(route())
    for _ in range(3):
        assert decide(stages, match)[1] == 1
    assert stages.limits.asked == 0  # nothing to remember: not even asked


class Signer:
    """Tokens that may be reused for `reuse` seconds, counted."""

    def __init__(self, reuse: float) -> None:
        self.reuse, self.minted = reuse, 0

    def token_until(
        self, identity: Identity, route: str, method: str, path: str, upstream: str
    ) -> tuple[str, float] | None:
        self.minted += 1
        return f"token-{self.minted}", time.monotonic() + self.reuse

    async def token_async(self, identity: Identity, route: str, method: str, path: str, upstream: str) -> str:
        found = self.token_until(identity, route, method, path, upstream)
        assert found is not None
        return found[0]


def test_remembered_identity_headers_renew_with_their_token() -> None:
    """A memo hit reuses the identity headers only while their signed token may be reused; then
    mutate gives new ones (and the memo keeps them)."""
    signer = Signer(reuse=0.3)
    stages, match = Stages(mutate=Mutator(signer)), Match(route())
    decide(stages, match)  # grant: token-1
    second, verified = decide(stages, match)  # memo hit: mutate asked once (token-2), kept
    third, _ = decide(stages, match)
    assert verified == 0
    token = dict(second.headers)[b"x-gateway-identity"]
    assert dict(third.headers)[b"x-gateway-identity"] == token and signer.minted == 2
    deadline = time.monotonic() + 5
    while dict(decide(stages, match)[0].headers)[b"x-gateway-identity"] == token:
        assert time.monotonic() < deadline, "a token was reused past its window"
        time.sleep(0.05)
    assert signer.minted == 3


def test_a_connection_finds_its_entry_again_only_for_the_same_header_method_and_path() -> None:
    """The connection's scratch keeps the entry of its last hit: it answers the same request
    again, and nothing else (another credential, method or path goes through the memo)."""
    stages, match = Stages(), Match(route())
    connection: dict[str, Any] = {}
    decide(stages, match, connection=connection)
    assert decide(stages, match, connection=connection)[1] == 0
    assert connection  # the hit was kept
    assert decide(stages, match, connection=connection, credential="sc_other.credential")[1] == 1
    assert decide(stages, match, connection=connection, path="/y")[1] == 1
    assert decide(stages, match, connection=connection, method="POST")[1] == 1
    assert decide(stages, match, connection=connection)[1] == 0
    reloaded = Match(route())  # a reload's new Route object: the connection's entry is not used
    assert decide(stages, reloaded, connection=connection)[1] == 1
    assert decide(stages, reloaded, connection=connection)[1] == 0


def test_a_connection_s_entry_ends_with_the_credential() -> None:
    stages, match = Stages(), Match(route())
    stages.authn.expires_at = time.time() + 0.2
    connection: dict[str, Any] = {}
    decide(stages, match, connection=connection)
    assert decide(stages, match, connection=connection)[1] == 0
    deadline = time.time() + 5
    while time.time() < stages.authn.expires_at and time.time() < deadline:
        time.sleep(0.05)
    assert decide(stages, match, connection=connection)[1] == 1


def test_a_connection_s_stale_entry_neither_answers_nor_removes_its_successor() -> None:
    """A change ends the entry the connection holds; the decision made again is remembered under
    the same key, and another connection's stale copy of the old entry must not delete it."""
    stages, match = Stages(), Match(route())
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    decide(stages, match)
    decide(stages, match, connection=first)
    decide(stages, match, connection=second)  # both hold the entry now
    stages.generations.change_client("cli_1")  # a key revoked (any change to the client)
    assert decide(stages, match, connection=first)[1] == 1  # refused from memory, decided again
    authorization = f"Bearer {CREDENTIAL}".encode()
    assert stages.remembered.granted(Policy(), match.route, "GET", "/x", authorization, second) is None  # type: ignore[arg-type]
    assert not second  # the stale entry is dropped from the connection...
    assert decide(stages, match)[1] == 0  # ...and the memo's new entry is still there


def test_a_hit_looks_the_generation_up_only_after_a_change_and_refuses_a_stale_feed() -> None:
    """While the epoch stands still and the feed is fresh, no generation can have moved: a hit
    skips the lookup. A change anywhere (another client's too) makes it look again, and a feed
    gone stale makes that lookup refuse (StoreError: the proxy answers 503), not pass."""
    stages, match = Stages(), Match(route())
    decide(stages, match)
    before = stages.generations.lookups
    assert decide(stages, match)[1] == 0
    assert decide(stages, match)[1] == 0
    assert stages.generations.lookups == before
    stages.generations.change_client("cli_other")
    assert decide(stages, match)[1] == 0  # looked up, unchanged for this client: confirmed
    assert stages.generations.lookups == before + 1
    assert decide(stages, match)[1] == 0
    assert stages.generations.lookups == before + 1  # confirmed as of the new epoch
    stages.generations.go_stale()
    authorization = [f"Bearer {CREDENTIAL}".encode()]
    with pytest.raises(StoreError):
        grant_now(stages, Policy(), match, "GET", "/x", authorization, b"")  # type: ignore[arg-type]


def test_a_memo_hit_on_a_route_with_a_permission_counts_as_a_decision_cache_hit() -> None:
    """gateway_decision_cache_total{result="hit"}: the memo answers such a decision in place of
    the grants engine's cache, and is counted as it would have been (at the metrics' flush)."""
    hit = metrics.DECISION_CACHE.labels("hit")
    metrics.flush()
    before = hit._value.get()
    permitted = Route("p", "", None, parse_template("/x"), "up", frozenset({"access_key"}), permission="docs:read")
    stages, match = Stages(), Match(permitted)
    decide(stages, match)  # the full decision: the fake authorizer counts nothing
    decide(stages, match)
    decide(stages, Match(route()))  # a route without a permission: no decision to count
    decide(stages, Match(route()))
    metrics.flush()
    assert hit._value.get() == before + 1


def test_nothing_the_memo_keeps_shows_a_credential_in_its_repr() -> None:
    """The memo's entries, the Granted they hold and a connection's scratch may end up in a log
    line or a traceback: the header's hash and the identity, never the credential or the
    forwardable token."""
    stages, match = Stages(), Match(route())
    stages.authn.identity = Identity(method="gateway_jwt", client_id="cli_1", forwardable_token="eyJ.secret.token")
    decide(stages, match)
    decide(stages, match)
    shown = repr(stages.remembered._entries)
    assert "cli_1" in shown and "Granted" in shown  # the entry and what it grants are there...
    assert CREDENTIAL not in shown and "eyJ.secret.token" not in shown  # ...no secret
