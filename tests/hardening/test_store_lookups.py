"""Defect 3: unauthenticated callers neither reach the store at will nor grow memory.

In-process against a real gateway store (made by `gateway init`), counting every store call: a
`kid` or client id that cannot be one of ours is refused before any lookup; what is looked up is
cached (remembered misses bounded by the ids' fixed format), and the public per-client discovery
documents and JWKS are served from a cache that the change feed invalidates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from gateway.admin import public_own_app
from gateway.config import Config, load_config
from gateway.errors import InvalidClient, InvalidToken
from gateway.identity import service
from gateway.presented import Presented
from gateway.runtime import IdentityServices, Runtime, open_identity
from gateway.store import Store
from tests.support.harness import Gateway, write_policy

CALLS: Counter[str] = Counter()


class CountingStore(Store):
    """The real store, counting every public method call."""

    def __getattribute__(self, name: str) -> Any:
        if (
            not name.startswith("_")
            and name not in ("backend", "close")
            and callable(object.__getattribute__(self, name))
        ):
            CALLS[name] += 1
        return object.__getattribute__(self, name)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    directory = tmp_path_factory.mktemp("lookups")
    policy = write_policy(directory / "policies", "routes: []\n")
    gw = Gateway(directory, None, [policy], account="acme")
    gw.init()
    return load_config(gw.config_path)


@pytest.fixture(scope="module")
def identity(config: Config) -> Iterator[IdentityServices]:
    made = open_identity(config)
    made.store.__class__ = CountingStore  # every component holds this very object
    try:
        yield made
    finally:
        made.store.close()


def calls(action: Any) -> int:
    before = sum(CALLS.values())
    action()
    return sum(CALLS.values()) - before


def _client_jwt(identity: IdentityServices, client_id: str, kid: str, base: str) -> str:
    now = int(time.time())
    claims = {
        "iss": f"{base}/v1/clients/{client_id}",
        "sub": client_id,
        "aud": base,
        "iat": now,
        "exp": now + 60,
    }
    header = base64.urlsafe_b64encode(json.dumps({"alg": "EdDSA", "kid": kid}).encode()).decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{body}.c2ln"


@pytest.mark.parametrize(
    "kid", ["x", "acc_" + "A" * 10_000, "acc_AAAA/../AAAAAAAAAAAAAAAAA", "sc_" + "A" * 22]
)
def test_a_kid_that_cannot_be_ours_is_refused_before_any_lookup(
    config: Config, identity: IdentityServices, kid: str
) -> None:
    client = identity.store.create_client(service.new_client({"name": "k"}, None), "t")
    token = _client_jwt(identity, client.client_id, kid, config.public_url)

    def authenticate() -> None:
        with pytest.raises(InvalidToken):
            asyncio.run(identity.client_jwt.authenticate(Presented(token)))

    assert calls(authenticate) == 0
    assert calls(lambda: asyncio.run(identity.directory.key(kid))) == 0
    assert kid not in identity.directory._unknown_keys  # nothing remembered for it either


def test_a_private_key_jwt_assertion_with_a_foreign_kid_reaches_no_store(
    config: Config, identity: IdentityServices
) -> None:
    client = identity.store.create_client(service.new_client({"name": "p"}, None), "t")
    assertion = _client_jwt(identity, client.client_id, "k" * 5000, config.public_url)
    claims = jwt.decode(assertion, options={"verify_signature": False})
    claims.update(iss=client.client_id, jti="j")
    header = assertion.split(".")[0]
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    def verify() -> None:
        with pytest.raises(InvalidClient):
            asyncio.run(identity.client_auth.verify_assertion(f"{header}.{body}.c2ln", None))

    assert calls(verify) == 0


def test_client_discovery_and_jwks_come_from_a_cache_the_feed_invalidates(
    config: Config, identity: IdentityServices
) -> None:
    asyncio.run(_discovery(config, identity))


async def _discovery(config: Config, identity: IdentityServices) -> None:
    async def counted(*paths: str) -> int:
        before = sum(CALLS.values())
        for path in paths:
            await http.get(path)
        return sum(CALLS.values()) - before

    runtime = Runtime(config, identity)
    directory = identity.directory
    await directory.start()
    client = identity.store.create_client(service.new_client({"name": "j"}, None), "t")
    key, _ = service.new_access_key(client.client_id, "acme")
    identity.store.create_access_key(key, "t")
    await directory.poll()
    base = f"/v1/clients/{client.client_id}/.well-known/openid-configuration"
    transport = httpx.ASGITransport(app=public_own_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=config.public_url) as http:
        first = await http.get(base + "/jwks")
        assert first.status_code == 200
        assert [k["kid"] for k in first.json()["keys"]] == [key.key_id]
        assert await counted(*[base + "/jwks"] * 20, *[base] * 20) == 0
        # An unknown (well-formed) client id: one lookup at most, then remembered; a malformed
        # one: none at all.
        unknown = f"/v1/clients/sc_{'Z' * 22}/.well-known/openid-configuration"
        assert (await http.get(unknown + "/jwks")).status_code == 404
        assert await counted(*[unknown] * 5, *[unknown + "/jwks"] * 5) == 0
        malformed = f"/v1/clients/sc_{'a' * 5000}/.well-known/openid-configuration/jwks"
        assert await counted(malformed) == 0
        assert (await http.get(malformed)).status_code == 404
        # A new key, seen through the change feed, is in the next document; a revoked one is not.
        second, _ = service.new_access_key(client.client_id, "acme")
        identity.store.create_access_key(second, "t")
        await directory.poll()
        assert {k["kid"] for k in (await http.get(base + "/jwks")).json()["keys"]} == {
            key.key_id,
            second.key_id,
        }
        identity.store.revoke_access_key(client.client_id, key.key_id, "t")
        await directory.poll()
        assert [k["kid"] for k in (await http.get(base + "/jwks")).json()["keys"]] == [second.key_id]


def test_a_key_named_by_kid_is_served_at_once_even_before_the_feed_brings_it(
    config: Config, identity: IdentityServices
) -> None:
    asyncio.run(_new_key_by_kid(config, identity))


async def _new_key_by_kid(config: Config, identity: IdentityServices) -> None:
    runtime = Runtime(config, identity)
    client = identity.store.create_client(service.new_client({"name": "n"}, None), "t")
    await identity.directory.poll()
    jwks = f"/v1/clients/{client.client_id}/.well-known/openid-configuration/jwks"
    transport = httpx.ASGITransport(app=public_own_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=config.public_url) as http:
        assert (await http.get(jwks)).json() == {"keys": []}  # cached: no keys yet
        key, _ = service.new_access_key(client.client_id, "acme")
        identity.store.create_access_key(key, "t")  # made "elsewhere": no poll yet
        found = (await http.get(jwks, params={"kid": key.key_id})).json()
        assert [k["kid"] for k in found["keys"]] == [key.key_id]
