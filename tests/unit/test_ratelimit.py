"""The rate-limit stage in-process (issue 14): GCRA over one or two limits, the local backend (a
dict with one worker, the group's shared table with several), the IETF headers, and the failure
modes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from gateway.errors import RateLimited, RateLimitUnavailable
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.ratelimit import BackendDown, RateLimiter, Verdict, render
from gateway.pipeline.ratelimit.local import LocalBackend, SharedBackend
from gateway.policy.model import Route, parse_template
from gateway.quota import RateLimit, parse_rate_limit

CLIENT = Identity(method="access_key", client_id="sc_a")


def route(limit: RateLimit | None = None) -> Route:
    return Route("r", "", None, parse_template("/x"), "up", frozenset({"access_key"}), rate_limit=limit)


_TABLES = itertools.count()


def shared(slots: int = 1024) -> SharedBackend:
    """A table of its own (they live in this process's group directory for its lifetime)."""
    return SharedBackend(slots, name=f"ratelimit-test-{next(_TABLES)}")


@pytest.fixture(params=["one worker", "several workers"])
def backend(request: pytest.FixtureRequest) -> LocalBackend | SharedBackend:
    return LocalBackend() if request.param == "one worker" else shared()


def test_a_burst_then_the_steady_rate(backend: LocalBackend | SharedBackend) -> None:
    limit = RateLimit(3, 60.0)
    results = [backend.hit_now(["k"], [limit], 100.0) for _ in range(4)]
    assert [r[0] for r in results] == [True, True, True, False]
    assert results[3][1] == pytest.approx(20.0)  # one request's worth of allowance comes back
    assert not backend.hit_now(["k"], [limit], 119.9)[0]
    assert backend.hit_now(["k"], [limit], 120.0)[0]
    # A quiet key gets its whole allowance back, never more.
    assert [backend.hit_now(["k"], [limit], 1000.0)[0] for _ in range(4)] == [True, True, True, False]


def test_burst_sets_how_many_at_once(backend: LocalBackend | SharedBackend) -> None:
    limit = RateLimit(10, 10.0, burst=2)
    assert [backend.hit_now(["k"], [limit], 5.0)[0] for _ in range(3)] == [True, True, False]


def test_a_refusal_by_one_limit_spends_nothing_of_the_other(backend: LocalBackend | SharedBackend) -> None:
    wide, narrow = RateLimit(100, 60.0), RateLimit(1, 60.0)
    assert backend.hit_now(["client", "route"], [wide, narrow], 0.0)[0]
    for _ in range(5):
        assert not backend.hit_now(["client", "route"], [wide, narrow], 0.0)[0]
    admitted, _, levels = backend.hit_now(["client"], [wide], 0.0)
    assert admitted and levels == [pytest.approx(2 * 0.6)]  # two requests spent, not seven


def test_workers_share_one_count() -> None:
    first = shared()
    second = SharedBackend(first.slots, name=first.shared.path.name)  # another worker's mapping
    limit = RateLimit(10, 60.0)
    admitted = [(first if i % 2 else second).hit_now(["k"], [limit], 50.0)[0] for i in range(30)]
    assert admitted == [True] * 10 + [False] * 20  # per worker it would have been 20
    assert second.hit_now(["k"], [limit], 56.0)[0]  # one request's allowance is back for both
    assert not first.hit_now(["k"], [limit], 56.0)[0]


def test_a_full_table_forgets_rather_than_refuses() -> None:
    backend = shared(slots=16)
    once = RateLimit(1, 60.0)
    # 500 callers in 16 slots: each one's first request passes, however many others came before.
    assert all(backend.hit_now([f"client-{i}"], [once], 10.0)[0] for i in range(500))
    assert backend.shared.path.stat().st_size == 16 * 16  # the table never grew
    # A caller still in the table is refused its second request.
    assert backend.hit_now(["client-499"], [once], 10.0)[0] is False
    with pytest.raises(ValueError, match="at least 16 slots"):
        SharedBackend(8, name="too-small")


def test_headers_follow_the_ietf_draft() -> None:
    headers = dict(render(["client", "route"], [RateLimit(100, 60.0), RateLimit(3, 60.0)], [0.6, 20.0]))
    assert headers[b"ratelimit-policy"] == b'"client";q=100;w=60, "route";q=3;w=60'
    assert headers[b"ratelimit"] == b'"client";r=99;t=1, "route";r=2;t=20'


def test_the_stage_limits_per_client_and_route() -> None:
    async def client_limit(client_id: str) -> RateLimit | None:
        return RateLimit(2, 60.0) if client_id == "sc_a" else None

    limiter = RateLimiter(LocalBackend(), client_limit)

    async def run() -> None:
        assert await limiter.check(ANONYMOUS, route(RateLimit(1, 60.0))) == ()
        assert await limiter.check(Identity(method="access_key", client_id="sc_b"), route()) == ()
        assert dict(await limiter.check(CLIENT, route()))[b"ratelimit"] == b'"client";r=1;t=30'
        await limiter.check(CLIENT, route())
        with pytest.raises(RateLimited) as refused:
            await limiter.check(CLIENT, route())
        assert refused.value.status == 429 and refused.value.retry_after == 30
        names = [n for n, _ in refused.value.extra_headers()]
        assert names == [b"retry-after", b"ratelimit-policy", b"ratelimit"]

    asyncio.run(run())


class Down:
    name = "redis"
    reachable = False

    async def hit(self, keys: Sequence[str], limits: Sequence[RateLimit]) -> Verdict:
        raise BackendDown()

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("fail_open", [False, True])
def test_failure_modes(fail_open: bool) -> None:
    async def client_limit(client_id: str) -> RateLimit | None:
        return RateLimit(1, 1.0)

    limiter = RateLimiter(Down(), client_limit, fail_open=fail_open)

    async def run() -> None:
        if fail_open:
            assert await limiter.check(CLIENT, route()) == ()
        else:
            with pytest.raises(RateLimitUnavailable):
                await limiter.check(CLIENT, route())

    asyncio.run(run())
    assert limiter.readiness() == {
        "backend": "redis",
        "reachable": False,
        "failureMode": "fail_open" if fail_open else "fail_closed",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "expected {requests, window, burst?}"),
        ({"requests": 0, "window": 1}, "requests:"),
        ({"requests": 5}, "window:"),
        ({"requests": 5, "window": "1m"}, "window:"),
        ({"requests": 5, "window": 0}, "window:"),
        ({"requests": 5, "window": 60, "burst": -1}, "burst:"),
        ({"requests": 5, "window": 60, "rate": 1}, "rate: unknown field"),
    ],
)
def test_bad_limits_name_the_field(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("{", r"\{").replace("}", r"\}")):
        parse_rate_limit(value)


def test_policy_windows_may_be_durations() -> None:
    assert parse_rate_limit({"requests": 5, "window": "1m"}, durations=True) == RateLimit(5, 60.0)
