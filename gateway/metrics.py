"""Prometheus metrics (contract §9).

Labels only ever hold values from fixed sets or from the policy (route id, upstream name), never
raw paths, tokens or anything a client typed. `gateway serve` sets PROMETHEUS_MULTIPROC_DIR before
this module is imported, so several worker processes report as one (prometheus_client picks its
value class at import time).

The hot path does not touch prometheus_client per request: in multi-process mode every value
update takes a lock, calls getpid() and writes an mmap (~17 µs for the ~5 updates of one proxied
request, measured in issue 8). `count` and `observe` add to plain per-process tallies instead,
and `flush` adds those to prometheus_client's values in bulk: whenever the worker has no request
in flight (so a request answered is counted before its caller can ask again, as before), else at
most FLUSH_SECONDS after the first unflushed observation (a saturated worker pays for one flush
per FLUSH_SECONDS, not per request), before this process renders the metrics page, and when the
worker stops.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered on the public listener.",
    ["route", "method", "code", "decision"],
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time from receiving a request to the end of its response, on the public listener.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
# The forward-auth decision endpoint's answers, apart from proxied requests: same labels, the
# route and outcome being those of the request decided (the code is what the front proxy got).
DECISIONS = Counter(
    "gateway_decisions_total",
    "Forward-auth decisions answered (/v1/decisions), by the route and outcome of the request decided.",
    ["route", "method", "code", "decision"],
)
DECISION_DURATION = Histogram(
    "gateway_decision_duration_seconds",
    "Time to answer a forward-auth decision request.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "gateway_upstream_duration_seconds",
    "Time from sending a request upstream to the end of the upstream's response.",
    ["upstream"],
    buckets=_LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total",
    "Requests refused by authentication, by reason (missing, malformed, unknown_key, revoked, "
    "wrong_account, bad_signature, expired, disabled_client, wrong_kind, unrecognised, untrusted, "
    "jwks_unavailable, invalid).",
    ["reason"],
)
DECISION_CACHE = Counter(
    "gateway_decision_cache_total",
    "Authorization decisions, by whether the decision cache answered (hit, miss).",
    ["result"],
)
TOKENS_ISSUED = Counter(
    "gateway_tokens_issued_total",
    "Gateway tokens issued, by grant type.",
    ["grant_type"],
)
JWKS_FETCHES = Counter(
    "gateway_jwks_fetch_total",
    "Fetches of a trusted issuer's keys, by configured issuer and outcome (ok, http_error, invalid, "
    "too_large, timeout, redirect_refused, error).",
    ["issuer", "outcome"],
)
VAULT_REFRESH = Counter(
    "gateway_vault_refresh_total",
    "Refreshes of users' access tokens at vault connections' providers, by connection id (from the "
    "connections an operator defined) and outcome (refreshed, invalid_grant, rejected, unavailable).",
    ["connection", "outcome"],
)
POLICY_RELOADS = Counter(
    "gateway_policy_reloads_total",
    "Policy reload attempts, by outcome (ok, invalid).",
    ["outcome"],
)

UNMATCHED = "unmatched"
# the decision label of a refusal, by status (a fixed set, contract §9)
_DECISION_BY_STATUS = {
    400: "invalid",
    401: "unauthenticated",
    403: "denied",
    429: "limited",
    404: "unmatched",
    413: "invalid",
    431: "invalid",
    503: "unavailable",
}


def decision_label(status: int, default: str) -> str:
    """The `decision` label of a request refused with `status` (else `default`)."""
    return _DECISION_BY_STATUS.get(status, default)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CODES = {n: f"{n}xx" for n in range(1, 6)}


_in_flight = 0  # requests begun and not yet observed, in this process


def begin_request() -> None:
    """A request arrived; `observe_request` ends it (exactly once)."""
    global _in_flight
    _in_flight += 1


def observe_request(
    route: str, method: str, status: int, decision: str, seconds: float, front: str = "proxy"
) -> None:
    """Count one answered request (`front`: "proxy", or "decisions" for the forward-auth
    endpoint), begun with `begin_request`. The labelled children are cached: `labels()`
    validates and locks on every call, which showed up in profiles of the hot path."""
    global _in_flight
    key = (route, method, status, decision, front)
    children = _children.get(key)
    if children is None:
        if len(_children) > 10_000:  # route ids come from policy files, but reloads can rename them
            _children.clear()
        counter, duration = _FRONTS[front]
        children = _children[key] = (
            counter.labels(route, method_label(method), code_label(status), decision),
            duration.labels(route),
        )
    count(children[0])
    observe(children[1], seconds)
    _in_flight -= 1
    if _in_flight <= 0:
        _in_flight = 0
        flush()


_children: dict[tuple[str, str, int, str, str], tuple[Any, Any]] = {}
_FRONTS = {"proxy": (REQUESTS, REQUEST_DURATION), "decisions": (DECISIONS, DECISION_DURATION)}


def method_label(method: str) -> str:
    return method if method in _METHODS else "other"


def code_label(status: int) -> str:
    return _CODES.get(status // 100, "other")


FLUSH_SECONDS = 0.1

# Unflushed tallies of this process: counter child -> increments, histogram child ->
# [sum, count per bucket...] (bucket i counts observations <= its upper bound, +Inf last).
_counts: dict[Any, int] = {}
_histograms: dict[Any, list[float]] = {}
_flush_scheduled = False


def count(child: Any) -> None:
    """`child.inc()` of a labelled Counter, batched."""
    counts = _counts
    counts[child] = counts.get(child, 0) + 1
    if not _flush_scheduled:
        _schedule_flush()


class Tallied:
    """A labelled Counter's child counted as a plain int (`tallied.n += 1`), added to the child at
    every flush: for a count on the hottest path, where even `count()`'s call is ~1 % of a
    request. Made once, at import time (`tallied`), and never dropped."""

    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.n = 0


_tallied: list[Tallied] = []


def tallied(child: Any) -> Tallied:
    made = Tallied(child)
    _tallied.append(made)
    return made


def observe(child: Any, seconds: float) -> None:
    """`child.observe(seconds)` of a labelled Histogram, batched."""
    tally = _histograms.get(child)
    if tally is None:
        tally = _histograms[child] = [0.0] * (len(child._upper_bounds) + 1)
    tally[0] += seconds
    tally[1 + bisect_left(child._upper_bounds, seconds)] += 1
    if not _flush_scheduled:
        _schedule_flush()


def _schedule_flush() -> None:
    global _flush_scheduled
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not in a worker's loop (a command, a test): no batching
        flush()
        return
    _flush_scheduled = True
    loop.call_later(FLUSH_SECONDS, _flush_on_timer)


def _flush_on_timer() -> None:
    """The timer is the only one to clear the flag: an idle flush in between leaves it running,
    so a lightly loaded worker arms one timer per FLUSH_SECONDS, not one per request."""
    global _flush_scheduled
    _flush_scheduled = False
    flush()


def flush() -> None:
    """Add the tallies to prometheus_client's values (private attributes of its Histogram: it has
    no bulk observe, and one observe() per request is what this module avoids)."""
    counts, histograms = dict(_counts), dict(_histograms)
    _counts.clear()
    _histograms.clear()
    for made in _tallied:
        if made.n:
            n, made.n = made.n, 0
            counts[made.child] = counts.get(made.child, 0) + n
    for child, n in counts.items():
        child.inc(n)
    for child, tally in histograms.items():
        child._sum.inc(tally[0])
        for bucket, n in zip(child._buckets, tally[1:], strict=True):
            if n:
                bucket.inc(n)


def exposition() -> tuple[bytes, str]:
    """The metrics page: aggregated over every worker process when several run."""
    flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass is not values.MutexValue:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# Usage batches written to the store (issue 14): one per worker per flush interval at most, never
# one per request. Client ids are never labels; usage per client lives in the store.
USAGE_FLUSHES = Counter(
    "gateway_usage_flushes_total",
    "Batches of usage counts and last-use times written to the store, by outcome.",
    ["outcome"],
)
