"""The JWKS fetcher against a real issuer on loopback that goes down, floods, trickles or sends
10 MB: cached keys keep working, fetches stay few, and nothing stalls the other requests."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

from tests.identities.helpers import proxy, trust, unique, within
from tests.identity.proxying import assert_invalid_token, warm_every_worker
from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.issuer import Issuer
from tests.support.processes import Upstream, http_client, new_mark


def trusted(admin: Api, issuer: Issuer) -> str:
    """Trust `workload` tokens of `issuer` for a new audience; a good token's audience."""
    client = admin.create_client(unique("jw"))["clientId"]
    audience = unique("aud")
    trust(admin, client, issuer.url, audience, {"sub": "workload"})
    return audience


def test_issuer_down_cached_keys_keep_working_without_a_fetch_storm(
    gw: Gateway, admin: Api, recorder: Upstream
) -> None:
    with Issuer() as flaky:
        flaky.cache_control = "max-age=1"  # clamped to jwks.min_age (1 s in this suite)
        audience = trusted(admin, flaky)
        token = flaky.token({"sub": "workload", "aud": audience})
        within(1.5, lambda: proxy(gw, "/whoami", token).status_code == 200, "trust")
        # Every worker fetches the keys once; a worker that never did has nothing to serve stale.
        warm_every_worker(gw, recorder, "/whoami", [token], new_mark())
        flaky.status = 503
        time.sleep(1.2)  # the cached keys are now past their max-age: stale, still usable
        before = flaky.fetches
        started = time.monotonic()
        with http_client(fresh=True) as http:
            for _ in range(20):  # fresh tokens (new jti), so no cached verification answers
                fresh = flaky.token({"sub": "workload", "aud": audience})
                assert proxy(gw, "/whoami", fresh, http=http).status_code == 200
            # A burst of unknown kids while the issuer is down: refused, and fetches stay few.
            for _ in range(30):
                forged = flaky.token({"sub": "workload", "aud": audience}, headers={"kid": uuid.uuid4().hex})
                assert_invalid_token(proxy(gw, "/whoami", forged, http=http))
        elapsed = time.monotonic() - started
        # At most one fetch per worker per refetch_interval (1 s here), plus one in flight.
        assert flaky.fetches - before <= gw.workers * (int(elapsed) + 2), (flaky.fetches - before, elapsed)
        assert gw.metric("gateway_jwks_fetch_total", issuer=flaky.url, outcome="http_error") >= 1
        flaky.status = 200


def test_burst_of_unknown_kids_fetches_once_per_worker(gw: Gateway, admin: Api) -> None:
    with Issuer() as issuer:
        audience = trusted(admin, issuer)
        within(1.5, lambda: proxy(gw, "/whoami", issuer.token({"sub": "workload", "aud": audience})).status_code == 200, "trust")
        before = issuer.fetches
        forged = [issuer.token({"sub": "workload", "aud": audience}, headers={"kid": uuid.uuid4().hex}) for _ in range(24)]
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda t: proxy(gw, "/whoami", t).status_code, forged))
        elapsed = time.monotonic() - started
        assert statuses == [401] * 24
        assert issuer.fetches - before <= gw.workers * (int(elapsed) + 2), (issuer.fetches - before, elapsed)


def _other_requests_stay_fast(gw: Gateway, good: str, seconds: float) -> float:
    """The slowest of requests with a cached credential sent for `seconds`."""
    slowest = 0.0
    deadline = time.monotonic() + seconds
    with http_client(fresh=True) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert proxy(gw, "/whoami", good, http=http).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
    return slowest


def test_huge_and_slow_jwks_stall_nothing(gw: Gateway, admin: Api, issuer: Issuer) -> None:
    good_audience = trusted(admin, issuer)
    good = issuer.token({"sub": "workload", "aud": good_audience})
    within(1.5, lambda: proxy(gw, "/whoami", good).status_code == 200, "trust")
    with Issuer() as huge, Issuer() as slow:
        huge.huge = 10 * 1024 * 1024
        slow.trickle, slow.delay = True, 0.05  # one byte every 50 ms: never done within 2 s

        def refused_after_fetch(bad: Issuer, outcome: str) -> bool:
            """Send the bad issuer's token until its fetch is counted with `outcome` (the
            entry reaches the workers within 1 s); every answer must be a 401."""
            audience = trusted(admin, bad)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert_invalid_token(proxy(gw, "/whoami", bad.token({"sub": "workload", "aud": audience})))
                if gw.metric("gateway_jwks_fetch_total", issuer=bad.url, outcome=outcome) >= 1:
                    return True
            return False

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waiting = [pool.submit(refused_after_fetch, huge, "too_large"), pool.submit(refused_after_fetch, slow, "timeout")]
            slowest = _other_requests_stay_fast(gw, good, 2.5)
            assert [w.result(timeout=15) for w in waiting] == [True, True]
        assert slowest < 0.5, slowest


def test_no_redirect_to_another_host(gw: Gateway, admin: Api) -> None:
    with Issuer() as redirecting, Issuer() as elsewhere:
        redirecting.redirect = elsewhere.jwks_url  # 127.0.0.1 on another port: another origin
        audience = trusted(admin, redirecting)
        token = redirecting.token({"sub": "workload", "aud": audience})
        within(1.5, lambda: proxy(gw, "/whoami", token).status_code == 401 and redirecting.fetches > 0, "a fetch")
        assert elsewhere.fetches == 0
        assert gw.metric("gateway_jwks_fetch_total", issuer=redirecting.url, outcome="redirect_refused") >= 1
