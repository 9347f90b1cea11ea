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


def test_a_full_cache_drops_its_oldest_sixteenth_at_once() -> None:
    """Evicting in batches keeps a flood of new keys cheap (see gateway.cache.make_room); what
    goes is still the oldest, and the cache never grows past its bound."""
    cache: ExpiringCache[int, int] = ExpiringCache(64, 10)
    for i in range(64):
        cache[i] = i
    cache[64] = 64
    assert [k for k in range(65) if k in cache] == list(range(4, 65))  # 64 // 16 = 4 went
    for i in range(65, 10_000):
        cache[i] = i
        assert len(cache) <= 64
    assert all(k in cache for k in range(9_950, 10_000))
    cache[9_999] = 0  # a key already in: nothing is evicted for it
    assert len(cache) == len([k for k in range(10_000) if k in cache])
