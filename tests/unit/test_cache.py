from __future__ import annotations

from gateway.cache import ExpiringCache


def test_expiry_bound_and_pop() -> None:
    now = [0.0]
    cache: ExpiringCache[str, int] = ExpiringCache(2, 10, clock=lambda: now[0])
    cache["a"] = 1
    cache["b"] = 2
    assert cache.get("a") == 1 and "b" in cache and len(cache) == 2
    cache["c"] = 3  # full: the oldest inserted goes
    assert cache.get("a") is None and cache.get("c") == 3
    now[0] = 11
    assert cache.get("b", "gone") == "gone" and "c" not in cache
    cache["d"] = 4
    assert cache.pop("d") == 4 and cache.pop("d", "none") == "none"
    cache.clear()
    assert len(cache) == 0
