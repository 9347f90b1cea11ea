"""The authenticators and the chain's cache, in-process against a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.config import StoreURL
from gateway.crypto import generate_access_key, parse_access_key
from gateway.errors import InvalidToken
from gateway.identity import service
from gateway.identity.directory import Directory
from gateway.models import AccessKey, Change, now_iso
from gateway.pipeline.authn import AuthenticatorChain
from gateway.pipeline.authn.access_key import AccessKeyAuthenticator
from gateway.pipeline.authn.client_jwt import ClientJwtAuthenticator
from gateway.store import Store, StoreError, open_store

BASE = "http://gw.test"
ALL = frozenset({"access_key", "client_jwt"})


class Counting(Store):
    """The real store, counting key lookups (to see the caches work)."""

    lookups = 0

    def get_access_key(self, key_id: str) -> AccessKey | None:
        Counting.lookups += 1
        return super().get_access_key(key_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = open_store(StoreURL("sqlite", "x", tmp_path / "g.db"))
    store = Counting(store.backend)
    client = store.create_client(service.new_client({"name": "svc", "scopes": ["a"]}, None), "t")
    key, access_key = service.new_access_key(client.client_id, "acme")
    store.create_access_key(key, "t")
    directory = Directory(store)
    chain = AuthenticatorChain(
        [
            AccessKeyAuthenticator(directory, "acme"),
            ClientJwtAuthenticator(directory, "acme", (BASE,), (BASE,)),
        ],
        generations=directory,
    )
    yield {
        "store": store,
        "client": client,
        "key": key,
        "access_key": access_key,
        "directory": directory,
        "chain": chain,
    }
    store.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def token(
    w: dict[str, Any],
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    signer: Any = None,
    alg: str = "EdDSA",
) -> str:
    now = int(time.time())
    cid = w["client"].client_id
    body = {
        "iss": f"{BASE}/v1/clients/{cid}",
        "sub": cid,
        "aud": "acme.accounts.authress.io",
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims or {})
    body = {k: v for k, v in body.items() if v is not None}
    key = signer if signer is not None else parse_access_key(w["access_key"]).private_key()
    return jwt.encode(body, key, algorithm=alg, headers={"kid": w["key"].key_id, **(headers or {})})


def refused(w: dict[str, Any], credential: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as info:
        run(w["chain"].authenticate(credential, ALL))
    assert info.value.reason == reason, info.value.description
    assert credential not in info.value.description


def test_access_key_and_its_cache(world: dict[str, Any]) -> None:
    identity = run(world["chain"].authenticate(world["access_key"], ALL))
    assert (identity.method, identity.client_id, identity.scopes) == (
        "access_key",
        world["client"].client_id,
        frozenset({"a"}),
    )
    before = Counting.lookups
    for _ in range(5):
        run(world["chain"].authenticate(world["access_key"], ALL))
    assert Counting.lookups == before  # served from the verified-credential cache


def test_revocation_is_seen_after_one_poll(world: dict[str, Any]) -> None:
    d: Directory = world["directory"]
    run(d.start())
    run(world["chain"].authenticate(world["access_key"], ALL))
    world["store"].revoke_access_key(world["client"].client_id, world["key"].key_id, "t")
    assert run(d.poll()) == 2
    refused(world, world["access_key"], "revoked")


def test_unknown_key_ids_are_negatively_cached(world: dict[str, Any]) -> None:
    forged = generate_access_key(world["client"].client_id, "acme").access_key  # a key id the store never saw
    before = Counting.lookups
    for _ in range(5):
        refused(world, forged, "unknown_key")
    assert Counting.lookups == before + 1


def test_wrong_account_and_other_clients_key(world: dict[str, Any]) -> None:
    parts = world["access_key"].split(".")
    refused(world, ".".join([parts[0], parts[1], "other", parts[3]]), "wrong_account")
    other = world["store"].create_client(service.new_client({"name": "b"}, None), "t")
    refused(world, ".".join([other.client_id, parts[1], parts[2], parts[3]]), "unknown_key")
    # right ids, another key's secret
    stolen = generate_access_key(world["client"].client_id, "acme").access_key.split(".")[3]
    refused(world, ".".join([parts[0], parts[1], parts[2], stolen]), "bad_signature")


def test_client_jwt_accepted_in_the_sdk_shapes(world: dict[str, Any]) -> None:
    for headers in ({"typ": "JWT"}, {"typ": "at+jwt"}, {"typ": "AT+JWT"}, {}):
        t = token(world, headers=headers, claims={"scopes": "openId", "client_id": world["client"].client_id})
        identity = run(world["chain"].authenticate(t, ALL))
        assert identity.method == "client_jwt" and identity.scopes == frozenset({"a"})  # claims grant nothing


def test_jku_and_friends_are_ignored(world: dict[str, Any]) -> None:
    t = token(
        world,
        headers={"jku": "http://198.51.100.1/jwks", "x5u": "http://198.51.100.1/x", "jwk": {"kty": "OKP"}},
    )
    assert run(world["chain"].authenticate(t, ALL)).method == "client_jwt"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_client_jwt_refusals(world: dict[str, Any]) -> None:
    w = world
    now = int(time.time())
    cid = w["client"].client_id
    good = token(w)
    head, body, sig = good.split(".")
    refused(w, f"{head}.{body}.{sig[:-4]}AAAA", "bad_signature")
    refused(w, f"{b64({'alg': 'none', 'kid': w['key'].key_id})}.{body}.", "malformed")
    hs = jwt.encode(
        json.loads(base64.urlsafe_b64decode(body + "==")),
        w["key"].public_key,
        algorithm="HS256",
        headers={"kid": w["key"].key_id},
    )
    refused(w, hs, "malformed")
    refused(w, token(w, headers={"crit": ["exp"]}), "malformed")
    refused(w, token(w, headers={"typ": "id+jwt"}), "malformed")
    refused(w, token(w, claims={"exp": now - 100, "iat": now - 700}), "expired")
    refused(w, token(w, claims={"exp": now + 90000}), "malformed")
    refused(w, token(w, claims={"iat": now + 3600, "exp": now + 4000}), "malformed")
    refused(w, token(w, claims={"aud": "someone-else"}), "malformed")
    refused(w, token(w, claims={"sub": "sc_" + "x" * 22}), "malformed")
    refused(w, token(w, claims={"exp": None}), "malformed")
    raw = json.loads(base64.urlsafe_b64decode(body + "=="))
    raw_text = json.dumps(raw).replace(str(raw["exp"]), "1e400")
    inf_body = base64.urlsafe_b64encode(raw_text.encode()).decode().rstrip("=")
    # Not JSON (jsonsafe refuses non-finite numbers), so not a JWT anyone recognises.
    refused(w, f"{head}.{inf_body}.{sig}", "unrecognised")
    other = w["store"].create_client(service.new_client({"name": "b"}, None), "t")
    okey, _ = service.new_access_key(other.client_id, "acme")
    w["store"].create_access_key(okey, "t")
    refused(w, token(w, headers={"kid": okey.key_id}), "unknown_key")
    # an issuer that is not ours: not a client JWT at all
    refused(w, token(w, claims={"iss": f"http://elsewhere/v1/clients/{cid}"}), "unrecognised")


def test_kind_not_accepted_on_route(world: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken, match="not accepted"):
        run(world["chain"].authenticate(world["access_key"], frozenset({"client_jwt"})))


def test_disabled_client_is_refused_after_the_change_is_seen(world: dict[str, Any]) -> None:
    d: Directory = world["directory"]
    run(d.start())
    run(world["chain"].authenticate(token(world), ALL))
    from dataclasses import replace

    world["store"].update_client(replace(world["client"], disabled=True, updated_at=now_iso()), "t")
    run(d.poll())
    refused(world, token(world), "disabled_client")


@pytest.mark.parametrize(
    "kind", ["client", "key", "credential", "grants", "signing", "token", "identity", "something-new"]
)
def test_every_change_that_moves_a_generation_moves_the_epoch(world: dict[str, Any], kind: str) -> None:
    """The decision memo skips the generation lookup while the epoch stands still: so no change
    may move a client's or the grants' generation without moving the epoch."""
    directory: Directory = world["directory"]
    client_id = world["client"].client_id
    before = directory.epoch, directory.generation(client_id)
    directory.apply(Change(1, kind, client_id))
    assert directory.epoch != before[0]
    epoch = directory.epoch
    directory.clear()
    assert directory.epoch != epoch and directory.generation(client_id) != before[1]


def test_the_feed_is_fresh_until_a_bound_after_the_last_poll(world: dict[str, Any]) -> None:
    directory: Directory = world["directory"]
    assert directory.fresh_until == float("inf")  # nobody follows the feed (the CLI): not gated

    async def run() -> None:
        started = time.monotonic()
        await directory.start()
        assert started < directory.fresh_until <= time.monotonic() + 1.0
        polled = time.monotonic()
        await directory.poll()
        assert polled < directory.fresh_until <= time.monotonic() + 1.0
        client_id = world["client"].client_id
        directory.generation(client_id)  # fresh: answers
        directory.fresh_until = time.monotonic() - 0.5  # as if the last poll were 1.5 s old
        with pytest.raises(StoreError, match=r"not been read for 1\.5 s"):
            directory.generation(client_id)

    asyncio.run(run())
