"""Rate limits (issue 14 item 3): per client (admin API) and per route (policy), both applying,
counted after authentication; 429 with Retry-After and the IETF RateLimit headers; `local` shared
by the workers of one gateway and Redis by two gateway processes; Redis stopped mid-run, fail
closed and open."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.apikeys.conftest import new_gateway
from tests.identity.proxying import call
from tests.support.harness import Gateway
from tests.support.processes import http_client
from tests.support.redis import PrivateRedis, key_prefix, require_redis


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    assert "q=" in response.headers["ratelimit-policy"]
    assert ";r=0;" in response.headers["ratelimit"], response.headers["ratelimit"]


def statuses(http: httpx.Client, gw: Gateway, path: str, key: str, n: int) -> list[int]:
    return [call(http, gw, path, key).status_code for _ in range(n)]


def test_route_limit_per_client_with_headers_and_no_spending_of_others_budget(gw: Gateway) -> None:
    admin = gw.admin()
    _, flooder = admin.new_client_with_key()
    _, quiet = admin.new_client_with_key()
    with http_client() as http:
        first = call(http, gw, "/limited", flooder)
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"route";q=3;w=60'
        assert first.headers["ratelimit"] == '"route";r=2;t=20'
        assert statuses(http, gw, "/limited", flooder, 2) == [200, 200]
        for _ in range(20):
            assert_limited(call(http, gw, "/limited", flooder))
        # Another client's budget is untouched, and refused requests (401) spend nothing.
        assert call(http, gw, "/limited", quiet[:-3] + "AAA").status_code == 401
        assert statuses(http, gw, "/limited", quiet, 4) == [200, 200, 200, 429]
        # Other routes are not limited for the flooder.
        assert call(http, gw, "/whoami", flooder).status_code == 200


def test_client_limit_applies_with_the_route_limit_and_changes_within_a_second(gw: Gateway) -> None:
    admin = gw.admin()
    client_id, key = admin.new_client_with_key()
    bad = admin.patch(f"/v1/clients/{client_id}", json={"rateLimit": {"requests": 0, "window": 60}})
    assert bad.status_code == 400 and bad.json()["error_description"].startswith("rateLimit.requests:")
    changed = admin.patch(f"/v1/clients/{client_id}", json={"rateLimit": {"requests": 5, "window": 60}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rateLimit"] == {"requests": 5, "window": 60, "burst": None}
    assert admin.get(f"/v1/clients/{client_id}").json()["rateLimit"]["requests"] == 5
    time.sleep(1.0)  # the change feed's bound; a worker may have cached the client before
    with http_client() as http:
        # The route allows 3 of the client's 5; the other 2 go to another route.
        both = call(http, gw, "/limited", key)
        assert both.headers["ratelimit-policy"] == '"client";q=5;w=60, "route";q=3;w=60'
        assert statuses(http, gw, "/limited", key, 3) == [200, 200, 429]
        assert statuses(http, gw, "/whoami", key, 3) == [200, 200, 429]
        limited = call(http, gw, "/whoami", key)
        assert_limited(limited)
        assert limited.headers["ratelimit-policy"] == '"client";q=5;w=60'
    # null removes the limit.
    assert admin.patch(f"/v1/clients/{client_id}", json={"rateLimit": None}).json()["rateLimit"] is None
    deadline = time.monotonic() + 2
    with http_client() as http:
        while call(http, gw, "/whoami", key).status_code == 429:
            assert time.monotonic() < deadline, "the removed limit still applies after 2 s"
            time.sleep(0.05)


def test_local_limits_hold_across_the_workers(gw: Gateway) -> None:
    admin = gw.admin()
    client_id, key = admin.new_client_with_key()  # never used yet: no worker has it cached
    assert admin.patch(f"/v1/clients/{client_id}", json={"rateLimit": {"requests": 10, "window": 60}}).is_success
    seen: list[int] = []
    with http_client(fresh=True) as http:  # a new connection each time: both workers get some
        for _ in range(30):
            response = call(http, gw, "/whoami", key)
            if response.status_code == 429:
                assert_limited(response)
            seen.append(response.status_code)
    assert seen == [200] * 10 + [429] * 20, seen  # counted per worker, it would be up to 20
    deadline = time.monotonic() + 5
    while len(pids := set(re.findall(rf"\[(\d+)\] gateway\.access: .* client={client_id} ", gw.log()))) < 2:
        assert time.monotonic() < deadline, f"one worker answered every request ({pids}): nothing shown"
        time.sleep(0.05)


def test_redis_shares_the_limit_between_two_gateway_processes(tmp_path: Path, policy_file: Path) -> None:
    url = require_redis()
    limits = {"backend": url, "key_prefix": key_prefix()}
    first = new_gateway(tmp_path / "a", [policy_file], rate_limits=limits)
    first.init()
    first.start()
    second = Gateway(
        tmp_path / "b",
        first.store,
        [policy_file],
        account=first.account,
        public_url=first.public_url,
        master_key_file=first.master_key_file,
        rate_limits=limits,
    )
    second.admin_key = first.admin_key
    second.start()
    try:
        admin = first.admin()
        client_id, key = admin.new_client_with_key()
        _, other = admin.new_client_with_key()
        admin.patch(f"/v1/clients/{client_id}", json={"rateLimit": {"requests": 10, "window": 60}})
        time.sleep(1.0)  # the change feed reaches the second process
        seen: list[int] = []
        with http_client() as a, http_client() as b:
            for i in range(30):
                response = call(a if i % 2 else b, first if i % 2 else second, "/whoami", key)
                if response.status_code == 429:
                    assert_limited(response)
                seen.append(response.status_code)
            assert seen.count(200) == 10 and seen.count(429) == 20, seen
            # Both processes refused some: the count is shared, not per process.
            assert 429 in seen[0::2] and 429 in seen[1::2]
            # The other client's budget is its own (no client limit: only the route's 3).
            assert [call(b, second, "/limited", other).status_code for _ in range(2)] == [200, 200]
            assert [call(a, first, "/limited", other).status_code for _ in range(2)] == [200, 429]
        for gw in (first, second):
            ready = httpx.get(f"{gw.admin_url}/readyz").json()
            assert ready["rateLimits"] == {
                "backend": "redis",
                "reachable": True,
                "failureMode": "fail_closed",
            }
            assert url not in str(ready)
    finally:
        second.stop()
        first.stop()


def test_redis_stopped_mid_run_fails_closed_or_open(tmp_path: Path, policy_file: Path) -> None:
    with PrivateRedis(tmp_path / "redis") as redis:
        closed = new_gateway(
            tmp_path / "closed", [policy_file], rate_limits={"backend": redis.url, "timeout": "200ms"}
        )
        opened = new_gateway(
            tmp_path / "open",
            [policy_file],
            rate_limits={"backend": redis.url, "failure_mode": "fail_open", "timeout": "200ms"},
        )
        gateways = {"fail_closed": closed, "fail_open": opened}
        keys = {}
        for name, gw in gateways.items():
            gw.init()
            gw.start()
            keys[name] = gw.admin().new_client_with_key()[1]
        try:
            with http_client() as http:
                for name, gw in gateways.items():
                    assert statuses(http, gw, "/limited", keys[name], 4) == [200, 200, 200, 429]
                redis.stop()
                stopped = time.monotonic()
                for name, gw in gateways.items():
                    for _ in range(5):
                        started = time.monotonic()
                        response = call(http, gw, "/limited", keys[name])
                        assert time.monotonic() - started < 2.0
                        if name == "fail_closed":
                            assert response.status_code == 503, response.text
                            assert response.json()["error"] == "temporarily_unavailable"
                            assert response.headers["retry-after"] == "1"
                        else:
                            assert response.status_code == 200, response.text
                            assert "ratelimit" not in response.headers
                    # Unlimited routes never ask Redis.
                    assert call(http, gw, "/open", None).status_code == 200
                deadline = stopped + 5
                for name, gw in gateways.items():
                    expect = 503 if name == "fail_closed" else 200
                    while True:
                        ready = http.get(f"{gw.admin_url}/readyz")
                        if ready.status_code == expect and not ready.json()["rateLimits"]["reachable"]:
                            break
                        assert time.monotonic() < deadline, ready.text
                        time.sleep(0.1)
                    assert ready.json()["rateLimits"]["failureMode"] == name
                redis.start()  # an empty Redis: the counts start again
                for name, gw in gateways.items():
                    deadline = time.monotonic() + 5
                    while (
                        http.get(f"{gw.admin_url}/readyz").status_code != 200
                        or not http.get(f"{gw.admin_url}/readyz").json()["rateLimits"]["reachable"]
                    ):
                        assert time.monotonic() < deadline, "readiness did not follow Redis back"
                        time.sleep(0.1)
                    assert statuses(http, gw, "/limited", keys[name], 4) == [200, 200, 200, 429]
        finally:
            for gw in gateways.values():
                gw.stop()
