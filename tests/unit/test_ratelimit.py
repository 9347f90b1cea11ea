"""The rate-limit stage in-process (issue 14): GCRA over one or two limits, the local backend,
the IETF headers, and the failure modes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.errors import RateLimited, RateLimitUnavailable
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.ratelimit import BackendDown, RateLimiter, Verdict, render
from gateway.pipeline.ratelimit.local import LocalBackend
from gateway.policy.model import Route, parse_template
from gateway.quota import RateLimit, parse_rate_limit

CLIENT = Identity(method="access_key", client_id="sc_a")


def route(limit: RateLimit | None = None) -> Route:
    return Route("r", "", None, parse_template("/x"), "up", frozenset({"access_key"}), rate_limit=limit)


def test_a_burst_then_the_steady_rate() -> None:
    backend = LocalBackend()
    limit = RateLimit(3, 60.0)
    results = [backend.hit_now(["k"], [limit], 100.0) for _ in range(4)]
    assert [r[0] for r in results] == [True, True, True, False]
    assert results[3][1] == pytest.approx(20.0)  # one request's worth of allowance comes back
    assert not backend.hit_now(["k"], [limit], 119.9)[0]
    assert backend.hit_now(["k"], [limit], 120.0)[0]
    # A quiet key gets its whole allowance back, never more.
    assert [backend.hit_now(["k"], [limit], 1000.0)[0] for _ in range(4)] == [True, True, True, False]


def test_burst_sets_how_many_at_once() -> None:
    backend = LocalBackend()
    limit = RateLimit(10, 10.0, burst=2)
    assert [backend.hit_now(["k"], [limit], 5.0)[0] for _ in range(3)] == [True, True, False]


def test_a_refusal_by_one_limit_spends_nothing_of_the_other() -> None:
    backend = LocalBackend()
    wide, narrow = RateLimit(100, 60.0), RateLimit(1, 60.0)
    assert backend.hit_now(["client", "route"], [wide, narrow], 0.0)[0]
    for _ in range(5):
        assert not backend.hit_now(["client", "route"], [wide, narrow], 0.0)[0]
    admitted, _, levels = backend.hit_now(["client"], [wide], 0.0)
    assert admitted and levels == [pytest.approx(2 * 0.6)]  # two requests spent, not seven


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
