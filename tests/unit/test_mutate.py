"""The mutate stage: identity headers, and the signed X-Gateway-Identity made off the event loop
when its key is RSA (issue 8 item 3)."""

from __future__ import annotations

import asyncio
import threading

import jwt
import pytest

from gateway.crypto import MasterKey, Sealer
from gateway.identity.signing import IdentityHeaders, KeyRing, RingHolder, new_signing_key
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.mutate import Mutator
from gateway.policy.model import Route, parse_template

ROUTE = Route("read-doc", "GET", None, parse_template("/docs/{id}"), "main", frozenset())
CALLER = Identity(method="access_key", client_id="sc_1", subject="sc_1", scopes=frozenset({"b", "a"}))


def mutator(alg: str) -> tuple[Mutator, KeyRing]:
    sealer = Sealer(MasterKey(b"m" * 32))
    ring = KeyRing([new_signing_key(sealer, alg, "current")], sealer)
    return Mutator(IdentityHeaders(RingHolder(ring), "http://gw.test")), ring


class Spy(IdentityHeaders):
    """Records the thread each token is minted on."""

    threads: list[int]

    def _mint(self, *args: object) -> str:
        self.threads.append(threading.get_ident())
        return super()._mint(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("alg", "off_loop"), [("RS256", True), ("EdDSA", False), ("ES256", False)])
def test_identity_token_is_signed_off_the_loop_only_for_rsa(alg: str, off_loop: bool) -> None:
    sealer = Sealer(MasterKey(b"m" * 32))
    ring = KeyRing([new_signing_key(sealer, alg, "current")], sealer)
    spy = Spy(RingHolder(ring), "http://gw.test")
    spy.threads = []
    mutate = Mutator(spy)

    async def run() -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], int]:
        first = await mutate.headers_async(CALLER, ROUTE, "GET", "/docs/1", "main")
        again = await mutate.headers_async(CALLER, ROUTE, "GET", "/docs/1", "main")
        return first, again, threading.get_ident()

    first, again, loop_thread = asyncio.run(run())
    assert first == again  # the second is the cached token
    assert len(spy.threads) == 1
    assert (spy.threads[0] != loop_thread) is off_loop
    token = dict(first)[b"x-gateway-identity"].decode()
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, ring.verifiers[kid][1], algorithms=[alg], audience="main")
    assert (claims["method"], claims["path"], claims["route"]) == ("GET", "/docs/1", "read-doc")
    assert dict(first)[b"x-gateway-scopes"] == b"a b"
    found = mutate.headers_until(CALLER, ROUTE, "GET", "/docs/1", "main")
    assert found is not None and found[0] == first  # the sync door agrees


def test_public_route_headers_carry_no_identity() -> None:
    mutate, _ = mutator("EdDSA")
    headers = asyncio.run(mutate.headers_async(ANONYMOUS, ROUTE, "GET", "/docs/1", "main"))
    assert headers == [(b"x-gateway-auth-method", b"none"), (b"x-gateway-route", b"read-doc")]


def test_a_new_tenant_gets_a_new_token_at_once() -> None:
    """The signed token is reused for the same caller, route, method and path; a client moved to
    another tenant is a new identity whose token must name the new tenant, not the cached one."""
    mutate, ring = mutator("EdDSA")
    before = Identity(method="access_key", client_id="sc_1", subject="sc_1", tenant="acme")
    after = Identity(method="access_key", client_id="sc_1", subject="sc_1", tenant="globex")
    tenants = []
    for identity in (before, after):
        found = mutate.headers_until(identity, ROUTE, "GET", "/docs/1", "main")
        assert found is not None
        token = dict(found[0])[b"x-gateway-identity"].decode()
        kid = jwt.get_unverified_header(token)["kid"]
        tenants.append(jwt.decode(token, ring.verifiers[kid][1], algorithms=["EdDSA"], audience="main")["tenant"])
    assert tenants == ["acme", "globex"]
