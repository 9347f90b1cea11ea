"""The console's "last hour" figures from the gateway's own request counter."""

from __future__ import annotations

from gateway.metrics_history import HOUR, TrafficHistory


def test_counts_cover_the_last_hour_from_samples() -> None:
    now = [0.0]
    totals = [(0.0, 0.0)]
    history = TrafficHistory(read=lambda: totals[0], clock=lambda: now[0], interval=60)
    assert history.last_hour().requests == 0  # nothing sampled yet
    for minute in range(0, 130):
        now[0] = minute * 60.0
        totals[0] = (minute * 10.0, minute * 1.0)  # 10 requests and 1 refusal a minute
        history.sample()
    now[0] = 130 * 60.0
    totals[0] = (1300.0, 130.0)
    traffic = history.last_hour()
    # From the sample an hour ago (minute 70) to now: 60 minutes of traffic.
    assert (traffic.requests, traffic.refused) == (600, 60)
    assert traffic.seconds == HOUR
    assert len(history._samples) <= 62  # older samples are dropped


def test_a_fresh_instance_reports_the_span_it_has_seen() -> None:
    now = [100.0]
    totals = [(5.0, 1.0)]
    history = TrafficHistory(read=lambda: totals[0], clock=lambda: now[0])
    history.sample()
    now[0] = 400.0
    totals[0] = (25.0, 4.0)
    traffic = history.last_hour()
    assert (traffic.requests, traffic.refused, traffic.seconds) == (20, 3, 300.0)


def test_reads_the_real_counter() -> None:
    from gateway.metrics import observe_request
    from gateway.metrics_history import read_totals

    before = read_totals()
    observe_request("r", "GET", 403, "denied", 0.001)
    observe_request("r", "GET", 200, "allow", 0.001)
    after = read_totals()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
