"""The keys of trusted external issuers (contract §5), fetched with httpx and cached per issuer.

A request whose key is cached never waits for the network: `key()` answers from memory, and when
the cached set is past its max-age it starts a refresh in the background and still answers from
the set it has (stale-while-revalidate), for `stale_for` (default 24 h) after it went stale, so an
issuer that is down does not stop its workloads. Only a request that needs a key we do not have
waits, and then for the one fetch in flight for that issuer (never a second one): an unknown
`kid` refetches at most once per `refetch_interval` (30 s), and so does a failed fetch, so a
burst of forged `kid`s or a dead issuer cannot turn into a fetch storm.

Fetches are bounded: a total time limit, a size limit read as the body streams in, at most
`max_keys` keys, no redirect to another host (or from https to http). Max-age comes from the
response's Cache-Control, clamped to [min_age, max_age] (1 min, 1 day). Every fetch counts in
`gateway_jwks_fetch_total{issuer,outcome}`; the issuer label is the configured issuer of an
entry (a bounded set), `other` for issuers no entry names (linkIdentity's one-off checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt

from gateway.config import Jwks
from gateway.errors import InvalidToken
from gateway.metrics import JWKS_FETCHES

log = logging.getLogger("gateway.jwks")

# Algorithms by key family: an RSA key never checks an ES256 signature, and so on (contract §5).
FAMILY_ALGS = {"RSA": ("RS256", "PS256"), "EC": ("ES256",), "OKP": ("EdDSA",)}
ALGORITHMS = frozenset(a for algs in FAMILY_ALGS.values() for a in algs)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d{1,10})", re.IGNORECASE)
_DEFAULT_MAX_AGE = 3600.0  # an issuer that says nothing


class FetchFailed(Exception):
    def __init__(self, outcome: str, why: str) -> None:
        super().__init__(why)
        self.outcome = outcome  # metric label, from a fixed set


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    family: str  # RSA, EC, OKP
    alg: str | None  # the JWK's own `alg`, when it names one
    key: Any

    def checks(self, alg: str) -> bool:
        return alg in FAMILY_ALGS[self.family] and self.alg in (None, alg)


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[VerificationKey, ...]
    fresh_until: float  # monotonic
    usable_until: float  # monotonic: fresh_until plus the stale window

    def find(self, kid: str | None, alg: str) -> VerificationKey | None:
        if kid is None:  # only unambiguous without a kid: one key that can check `alg`
            candidates = [k for k in self.keys if k.checks(alg)]
            return candidates[0] if len(candidates) == 1 else None
        return next((k for k in self.keys if k.kid == kid and k.checks(alg)), None)


@dataclass
class _Source:
    issuer: str
    jwks_uri: str | None  # None: from the issuer's discovery document
    label: str
    keys: KeySet | None = None
    task: asyncio.Task[None] | None = None
    last_attempt: float = -1e18  # monotonic time of the last fetch that was started


def parse_jwks(body: bytes, max_keys: int) -> tuple[VerificationKey, ...]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchFailed("invalid", "the JWKS is not JSON") from None
    raw_keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw_keys, list):
        raise FetchFailed("invalid", "the JWKS has no keys list")
    keys = []
    for raw in raw_keys[:max_keys]:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        kty, crv, kid, alg = raw.get("kty"), raw.get("crv"), raw.get("kid"), raw.get("alg")
        name = {"RSA": "RS256", "EC": "ES256" if crv == "P-256" else None}.get(str(kty))
        if kty == "OKP" and crv == "Ed25519":
            name = "EdDSA"
        if (
            name is None
            or (kid is not None and not isinstance(kid, str))
            or (alg is not None and not isinstance(alg, str))
        ):
            continue
        public = {k: v for k, v in raw.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = jwt.get_algorithm_by_name(name).from_jwk(json.dumps(public))
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            continue
        if kty == "RSA" and getattr(key, "key_size", 0) < 2048:
            continue
        keys.append(VerificationKey(kid, str(kty), alg, key))
    if not keys:
        raise FetchFailed("invalid", "the JWKS has no usable signing key")
    return tuple(keys)


def max_age_of(cache_control: str | None, low: float, high: float) -> float:
    if cache_control is None:
        return min(max(_DEFAULT_MAX_AGE, low), high)
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return low
    found = _MAX_AGE.search(cache_control)
    seconds = float(found.group(1)) if found else _DEFAULT_MAX_AGE
    return min(max(seconds, low), high)


class JwksFetcher:
    def __init__(
        self,
        settings: Jwks,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sources: dict[str, _Source] = {}
        self._configured: dict[str, str | None] = {}

    # --- configuration (from the index of entries) -------------------------------------------

    def configure(self, issuers: dict[str, str | None]) -> None:
        """The issuers the entries name, with their JWKS URL (None: discovery). Sources of
        issuers no entry names any more are forgotten; a changed URL starts afresh."""
        self._configured = dict(issuers)
        for issuer, source in list(self._sources.items()):
            # A source made for a one-off check (labelled `other`) starts afresh once trusted.
            if issuer not in issuers or issuers[issuer] != source.jwks_uri or source.label != issuer:
                if source.task is None:
                    del self._sources[issuer]
                else:  # let the fetch finish for whoever waits; the next call makes a new source
                    self._sources.pop(issuer)

    def _source(self, issuer: str, jwks_uri: str | None) -> _Source:
        source = self._sources.get(issuer)
        if source is None:
            configured = issuer in self._configured
            source = _Source(
                issuer,
                self._configured.get(issuer) if configured else jwks_uri,
                issuer if configured else "other",
            )
            self._sources[issuer] = source
        return source

    # --- the one question the verifier asks ----------------------------------------------------

    async def key(
        self, issuer: str, kid: str | None, alg: str, jwks_uri: str | None = None
    ) -> VerificationKey:
        """The issuer's key for `kid` and `alg`, or InvalidToken. Answers from memory when it can."""
        source = self._source(issuer, jwks_uri)
        now = self.clock()
        keys = source.keys
        if keys is not None and now < keys.usable_until:
            found = keys.find(kid, alg)
            if found is not None:
                if now >= keys.fresh_until:
                    self._start(source, now)  # refresh behind the scenes; this request goes on
                return found
        # A key we do not have: wait for the one fetch in flight, or start one unless the last
        # began less than refetch_interval ago.
        if source.task is None:
            self._start(source, now)
        if source.task is not None:
            await asyncio.shield(source.task)
        keys = source.keys
        if keys is None or self.clock() >= keys.usable_until:
            raise InvalidToken("the issuer's keys cannot be fetched", reason="jwks_unavailable")
        found = keys.find(kid, alg)
        if found is None:
            raise InvalidToken("unknown key", reason="unknown_key")
        return found

    def _start(self, source: _Source, now: float) -> None:
        if source.task is not None or now - source.last_attempt < self.settings.refetch_interval:
            return
        source.last_attempt = now
        source.task = asyncio.get_running_loop().create_task(self._fetch(source))

    # --- fetching ---------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            ca_file = self.settings.ca_file
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
            )
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout,
                follow_redirects=False,
                trust_env=False,
                verify=verify,
                transport=self._transport,
                headers={"accept": "application/json", "user-agent": "gateway-jwks"},
            )
        return self._client

    async def _fetch(self, source: _Source) -> None:
        outcome = "error"
        try:
            async with asyncio.timeout(self.settings.timeout):
                uri = source.jwks_uri or await self._discover(source.issuer)
                body, cache_control = await self._get(uri)
            keys = await asyncio.to_thread(parse_jwks, body, self.settings.max_keys)
            now = self.clock()
            fresh = now + max_age_of(cache_control, self.settings.min_age, self.settings.max_age)
            source.keys = KeySet(keys, fresh, fresh + self.settings.stale_for)
            outcome = "ok"
        except FetchFailed as exc:
            outcome = exc.outcome
            log.warning("cannot fetch the keys of issuer %s: %s", source.issuer, exc)
        except TimeoutError:
            outcome = "timeout"
            log.warning("fetching the keys of issuer %s took over %gs", source.issuer, self.settings.timeout)
        except httpx.HTTPError as exc:
            outcome = "error"
            log.warning("cannot fetch the keys of issuer %s: %s", source.issuer, type(exc).__name__)
        except Exception:  # a loop that keeps caches true never dies quietly (ARCHITECTURE §13)
            log.exception("fetching the keys of issuer %s failed", source.issuer)
        finally:
            source.task = None
            JWKS_FETCHES.labels(source.label, outcome).inc()

    async def _discover(self, issuer: str) -> str:
        body, _ = await self._get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise FetchFailed("invalid", "the discovery document is not JSON") from None
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            # OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
            raise FetchFailed("invalid", "the discovery document names another issuer")
        uri = document.get("jwks_uri")
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise FetchFailed("invalid", "the discovery document has no usable jwks_uri")
        if parts.scheme == "http" and urlsplit(issuer).scheme == "https":
            raise FetchFailed("invalid", "the discovery document's jwks_uri is not https")
        assert isinstance(uri, str)
        return uri

    async def _get(self, url: str) -> tuple[bytes, str | None]:
        """GET with at most 3 redirects, each to the same scheme and host; the body is cut off
        (and refused) past max_bytes."""
        client = self._http()
        for _ in range(4):
            async with client.stream("GET", url) as response:
                if response.status_code in (301, 302, 303, 307, 308):
                    target = urljoin(url, response.headers.get("location", ""))
                    before, after = urlsplit(url), urlsplit(target)
                    if (after.scheme, after.netloc) != (before.scheme, before.netloc):
                        raise FetchFailed("redirect_refused", "redirected to another host")
                    url = target
                    continue
                if response.status_code != 200:
                    raise FetchFailed("http_error", f"HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.settings.max_bytes:
                    raise FetchFailed("too_large", f"over {self.settings.max_bytes} bytes")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.settings.max_bytes:
                        raise FetchFailed("too_large", f"over {self.settings.max_bytes} bytes")
                return bytes(body), response.headers.get("cache-control")
        raise FetchFailed("redirect_refused", "too many redirects")

    async def close(self) -> None:
        for source in list(self._sources.values()):
            if source.task is not None:
                source.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await source.task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
