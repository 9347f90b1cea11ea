"""The JWKS fetcher in-process (httpx.MockTransport and a hand-turned clock): caching by
Cache-Control within its bounds, stale-while-revalidate and the stale window, one fetch in
flight, the refetch interval, redirects, size limits, discovery, key types."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import Jwks
from gateway.errors import InvalidToken
from gateway.identity.jwks import JwksFetcher, max_age_of

ISSUER = "https://issuer.example"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


class Issuer:
    """A mock issuer: discovery and a JWKS, counting requests; `answer` may be replaced."""

    def __init__(self) -> None:
        self.keys = [jwk(RSA_KEY, "r1")]
        self.requests: list[str] = []
        self.cache_control = "max-age=120"
        self.delay = 0.0
        self.answer: Callable[[httpx.Request], httpx.Response] | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer is not None:
            return self.answer(request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/keys"})
        return httpx.Response(200, json={"keys": self.keys}, headers={"cache-control": self.cache_control})

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for r in self.requests if r.endswith("/keys"))


def run(test: Callable[[JwksFetcher, Issuer, list[float]], Awaitable[None]], **settings: Any) -> None:
    issuer = Issuer()
    now = [1000.0]
    fetcher = JwksFetcher(
        Jwks(**{"refetch_interval": 30.0, "timeout": 1.0, **settings}),
        clock=lambda: now[0],
        transport=httpx.MockTransport(issuer.handle),
    )
    fetcher.configure({ISSUER: None})

    async def main() -> None:
        try:
            await test(fetcher, issuer, now)
        finally:
            await fetcher.close()

    asyncio.run(main())


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_cached_keys_answer_without_a_request() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        assert (await fetcher.key(ISSUER, "r1", "RS256")).kid == "r1"
        assert issuer.jwks_fetches == 1 and len(issuer.requests) == 2  # discovery, then keys
        for _ in range(10):
            await fetcher.key(ISSUER, "r1", "PS256")
        assert issuer.jwks_fetches == 1
        with pytest.raises(InvalidToken):  # an RSA key never checks ES256
            await fetcher.key(ISSUER, "r1", "ES256")

    run(test)


def test_past_max_age_answers_at_once_and_refreshes_behind() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        issuer.cache_control = "max-age=5"  # clamped up to min_age 60
        await fetcher.key(ISSUER, "r1", "RS256")
        now[0] += 59
        await fetcher.key(ISSUER, "r1", "RS256")
        await settle()
        assert issuer.jwks_fetches == 1
        now[0] += 2
        issuer.delay = 0.05
        await asyncio.wait_for(fetcher.key(ISSUER, "r1", "RS256"), 0.01)  # no waiting on the fetch
        await asyncio.sleep(0.1)
        assert issuer.jwks_fetches == 2

    run(test)


def test_stale_keys_serve_while_the_issuer_is_down_then_stop() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        await fetcher.key(ISSUER, "r1", "RS256")
        issuer.answer = lambda request: httpx.Response(503)
        now[0] += 120 + 3000  # past max-age, within the stale window (1 h here)
        assert (await fetcher.key(ISSUER, "r1", "RS256")).kid == "r1"
        await settle()
        now[0] += 3600
        with pytest.raises(InvalidToken, match="cannot be fetched"):
            await fetcher.key(ISSUER, "r1", "RS256")

    run(test, stale_for=3600.0)


def test_unknown_kid_refetches_at_most_once_per_interval() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        await fetcher.key(ISSUER, "r1", "RS256")
        now[0] += 31
        issuer.keys.append(jwk(EC_KEY, "e1"))
        assert (await fetcher.key(ISSUER, "e1", "ES256")).kid == "e1"
        assert issuer.jwks_fetches == 2
        for kid in ("x1", "x2", "x3"):
            with pytest.raises(InvalidToken, match="unknown key"):
                await fetcher.key(ISSUER, kid, "RS256")
        assert issuer.jwks_fetches == 2
        now[0] += 31
        with pytest.raises(InvalidToken, match="unknown key"):
            await fetcher.key(ISSUER, "x4", "RS256")
        assert issuer.jwks_fetches == 3

    run(test)


def test_one_fetch_in_flight_for_many_waiters() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        issuer.delay = 0.05
        found = await asyncio.gather(*(fetcher.key(ISSUER, "r1", "RS256") for _ in range(20)))
        assert {k.kid for k in found} == {"r1"} and issuer.jwks_fetches == 1

    run(test)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda r: httpx.Response(302, headers={"location": "https://evil.example/keys"}), "redirect_refused"),
        (lambda r: httpx.Response(302, headers={"location": "http://issuer.example/keys"}), "redirect_refused"),
        (lambda r: httpx.Response(200, content=b"x" * 2000), "too_large"),
        (lambda r: httpx.Response(200, content=b"not json"), "invalid"),
        (lambda r: httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "invalid"),
        (lambda r: httpx.Response(404), "http_error"),
    ],
    ids=["other-host", "downgrade", "too-large", "not-json", "hmac-key-only", "404"],
)
def test_bad_fetches_give_no_keys(answer: Callable[[httpx.Request], httpx.Response], why: str) -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        fetcher.configure({ISSUER: f"{ISSUER}/keys"})
        issuer.answer = answer
        with pytest.raises(InvalidToken, match="cannot be fetched"):
            await fetcher.key(ISSUER, "r1", "RS256")
        assert not any("evil" in r for r in issuer.requests)

    run(test, max_bytes=1000)


def test_same_host_redirect_is_followed() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        fetcher.configure({ISSUER: f"{ISSUER}/old"})

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/old":
                return httpx.Response(301, headers={"location": "/keys"})
            return httpx.Response(200, json={"keys": issuer.keys})

        issuer.answer = answer
        assert (await fetcher.key(ISSUER, "r1", "RS256")).kid == "r1"

    run(test)


def test_discovery_must_name_the_issuer_and_small_rsa_keys_are_skipped() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        issuer.answer = lambda r: httpx.Response(200, json={"issuer": "https://other.example", "jwks_uri": f"{ISSUER}/keys"})
        with pytest.raises(InvalidToken):
            await fetcher.key(ISSUER, "r1", "RS256")
        assert issuer.jwks_fetches == 0
        issuer.answer = None
        issuer.keys = [jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "weak")]
        now[0] += 31
        with pytest.raises(InvalidToken):
            await fetcher.key(ISSUER, "weak", "RS256")

    run(test)


def test_slow_fetch_times_out() -> None:
    async def test(fetcher: JwksFetcher, issuer: Issuer, now: list[float]) -> None:
        issuer.delay = 1.0
        with pytest.raises(InvalidToken, match="cannot be fetched"):
            await fetcher.key(ISSUER, "r1", "RS256")

    run(test, timeout=0.1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 3600.0), ("max-age=10", 60.0), ("max-age=999999", 86400.0), ("public, max-age=600", 600.0), ("no-store", 60.0)],
)
def test_max_age_bounds(header: str | None, seconds: float) -> None:
    assert max_age_of(header, 60.0, 86400.0) == seconds



def test_a_private_ca_bundle_is_loaded(tmp_path: Any) -> None:
    """jwks.ca_file (an issuer behind a cluster's own CA) goes into the client's TLS context; a
    file that is no CA bundle is an error, never a silent fall back to the system's CAs. Nothing
    is fetched here."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(EC_KEY.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(EC_KEY, hashes.SHA256())
    )
    good, bad = tmp_path / "ca.pem", tmp_path / "bad.pem"
    good.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    bad.write_text("not a certificate")

    async def main() -> None:
        fetcher = JwksFetcher(Jwks(ca_file=good))
        assert fetcher._http() is fetcher._http()
        await fetcher.close()
        with pytest.raises(ssl.SSLError):
            JwksFetcher(Jwks(ca_file=bad))._http()

    asyncio.run(main())
