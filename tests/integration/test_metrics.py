"""Metrics on the admin listener after real traffic (contract §9): the request counter with its
four labels, the two duration histograms, labels from fixed sets only, and one view over all
workers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import rawhttp
from tests.support.harness import Gateway, running_gateway
from tests.support.metrics import delta, scrape

REQUESTS = "gateway_requests_total"


def get(gateway: Gateway, target: str, headers: list[tuple[str, str]] = (), method: str = "GET") -> int:  # type: ignore[assignment]
    """One request on a fresh connection; returns the status."""
    return rawhttp.send(gateway.port, rawhttp.build(method, target, headers)).status


def test_requests_counted_by_route_method_code_and_decision(gateway: Gateway) -> None:
    before = scrape(gateway.admin_url)
    assert [get(gateway, "/v1/users/me") for _ in range(3)] == [200] * 3
    assert [get(gateway, "/no/such/route") for _ in range(2)] == [404] * 2
    assert get(gateway, "/v1/docs/7") == 401
    assert get(gateway, "/files/%2e%2e/x") == 400
    assert get(gateway, "/methods/x", method="POST") == 200
    after = scrape(gateway.admin_url)

    assert delta(before, after, REQUESTS, route="users-me", method="GET", code="2xx", decision="public") == 3
    assert (
        delta(before, after, REQUESTS, route="unmatched", method="GET", code="4xx", decision="unmatched") == 2
    )
    assert (
        delta(
            before,
            after,
            REQUESTS,
            route="read-document",
            method="GET",
            code="4xx",
            decision="unauthenticated",
        )
        == 1
    )
    assert delta(before, after, REQUESTS, route="unmatched", code="4xx", decision="invalid") == 1
    assert delta(before, after, REQUESTS, route="method-post", method="POST", code="2xx") == 1


def test_upstream_failures_are_counted_as_5xx(gateway: Gateway) -> None:
    before = scrape(gateway.admin_url)
    assert get(gateway, "/dead") == 502
    after = scrape(gateway.admin_url)
    assert delta(before, after, REQUESTS, route="dead", method="GET", code="5xx") == 1


def test_labels_never_carry_raw_paths_or_client_text(gateway: Gateway, policy_file: Path) -> None:
    token = "zq9f3a"  # appears only in what the client sends
    get(gateway, f"/{token}/secret/path?{token}=1", [("Authorization", f"Bearer {token}-credential")])
    get(gateway, f"/v1/users/{token}")  # matched by a route with a parameter
    get(gateway, f"/v1/docs/{token}", [("Authorization", f"Bearer {token}")])
    get(gateway, f"/files/{token}%2e%2e")
    get(gateway, f"/methods/{token}", method="PURGE")
    get(gateway, "/methods/x", method="PURGE")
    get(gateway, "/v1/users/me", [("X-Request-Id", token)])
    after = scrape(gateway.admin_url)
    assert token not in after.text
    route_ids = {route["id"] for route in yaml.safe_load(policy_file.read_text())["routes"]}
    labels = after.labels(REQUESTS)
    assert labels
    for label_set in labels:
        assert set(label_set) == {"route", "method", "code", "decision"}, label_set
        assert label_set["route"] in route_ids | {"unmatched", "gateway"}, label_set
        assert label_set["method"] in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, (
            label_set
        )
        assert re.fullmatch(r"[1-5]xx|other", label_set["code"]), label_set
    assert {"route": "method-any", "method": "other", "code": "2xx", "decision": "public"} in labels


def test_request_duration_histogram_by_route(gateway: Gateway) -> None:
    before = scrape(gateway.admin_url)
    for _ in range(4):
        get(gateway, "/v1/users/42")
    after = scrape(gateway.admin_url)
    name = "gateway_request_duration_seconds"
    assert delta(before, after, name + "_count", route="users-one") == 4
    assert delta(before, after, name + "_bucket", route="users-one", le="+Inf") == 4
    assert after.total(name + "_sum", route="users-one") > 0
    assert len({ls["le"] for ls in after.labels(name + "_bucket")}) > 5


def test_upstream_duration_histogram_by_upstream(gateway: Gateway) -> None:
    before = scrape(gateway.admin_url)
    for _ in range(3):
        get(gateway, "/v1/users/me")
    get(gateway, "/slow?up_sleep=0.05")
    after = scrape(gateway.admin_url)
    name = "gateway_upstream_duration_seconds"
    assert delta(before, after, name + "_count", upstream="main") == 3
    assert delta(before, after, name + "_count", upstream="short") == 1
    assert delta(before, after, name + "_sum", upstream="short") >= 0.05


def test_metrics_page_is_prometheus_text(gateway: Gateway, http: httpx.Client) -> None:
    response = http.get(gateway.admin_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE gateway_requests_total counter" in response.text
    assert "# TYPE gateway_request_duration_seconds histogram" in response.text


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    """`--workers 2` with the default metrics set-up (the gateway makes its own folder)."""
    with running_gateway(tmp_path_factory.mktemp("two-workers"), [policy_file], workers=2) as gw:
        yield gw


@pytest.mark.slow
def test_two_workers_report_one_total(two_workers: Gateway) -> None:
    gw = two_workers
    [metrics_dir] = gw.worker_environ("PROMETHEUS_MULTIPROC_DIR")  # where each worker writes its values

    def counting_workers() -> int:  # a worker writes its counter file once it has counted something
        return len(list(Path(metrics_dir).glob("counter_*.db")))

    sent = 0
    for _ in range(4):  # fresh connections spread over the workers; more batches if they did not
        assert [get(gw, "/v1/users/me") for _ in range(50)] == [200] * 50
        sent += 50
        if counting_workers() >= 2:
            break
    assert counting_workers() >= 2, "all requests went to one worker"
    for _ in range(6):  # whichever worker answers the scrape, the total is the same
        assert scrape(gw.admin_url).total(REQUESTS, route="users-me", code="2xx") == sent
