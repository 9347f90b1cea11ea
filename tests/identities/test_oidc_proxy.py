"""External tokens at the proxy: GitHub Actions- and Kubernetes-shaped tokens from a local issuer
on loopback, the cases that must pass and the many that must not (the upstream never sees those)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.identities.helpers import grant, proxy, trust, unique, within
from tests.identity.proxying import assert_invalid_token
from tests.support.admin import Api
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.issuer import Issuer, Key
from tests.support.processes import MARK, Upstream, new_mark


@pytest.fixture(scope="module")
def github(gw: Gateway, issuer: Issuer) -> dict[str, Any]:
    """A client trusted for acme/deploy's main branch, with documents:read on /users/1."""
    api = gw.admin()
    client = api.create_client(unique("deploy"), scopes=["deploy"])["clientId"]
    audience = f"https://{unique('aud')}.example"
    entry = trust(
        api,
        client,
        issuer.url,
        audience,
        {"sub": "repo:acme/deploy:ref:refs/heads/main"},
        preset="github-actions",
    )
    grant(api, client, "documents:read", "/users/1")
    return {"client": client, "audience": audience, "entry": entry}


def test_github_token_passes_as_the_mapped_client(
    gw: Gateway, issuer: Issuer, github: dict[str, Any], recorder: Upstream
) -> None:
    token = issuer.github(github["audience"])
    mark = new_mark()
    response = within(
        1.5,
        lambda: (r := proxy(gw, "/v1/users/1/documents/2", token, **{MARK: mark})).status_code == 200 and r,
        "the grant",
    )
    assert response.status_code == 200
    seen = recorder.marked(mark)[-1]
    assert headers_named(seen, "x-gateway-auth-method") == ["oidc"]
    assert headers_named(seen, "x-gateway-client-id") == [github["client"]]
    assert headers_named(seen, "x-gateway-subject") == ["repo:acme/deploy:ref:refs/heads/main"]
    assert headers_named(seen, "x-gateway-identity-id") == [github["entry"]["identityId"]]
    assert headers_named(seen, "x-gateway-scopes") == ["deploy"]
    assert headers_named(seen, "authorization") == []  # the external token is not forwarded
    identity = jwt.decode(headers_named(seen, "x-gateway-identity")[0], options={"verify_signature": False})
    assert (
        identity["sub"] == "repo:acme/deploy:ref:refs/heads/main"
        and identity["client_id"] == github["client"]
    )
    # Its grants, not more: /users/2 is not granted.
    assert proxy(gw, "/v1/users/2/documents/2", token).status_code == 403


def _forged(
    issuer: Issuer, audience: str, header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str
) -> str:
    return jwt.encode(
        {
            "iss": issuer.url,
            "aud": audience,
            "sub": "repo:acme/deploy:ref:refs/heads/main",
            "exp": int(time.time()) + 300,
            **claims,
        },
        key,
        algorithm=alg,
        headers=header,
    )


def _none_token(issuer: Issuer, audience: str) -> str:
    return f"{_part({'alg': 'none', 'kid': issuer.keys[0].kid})}.{_part(_claims(issuer, audience))}."


def refused_tokens(issuer: Issuer, audience: str, other: Issuer) -> dict[str, str]:
    main = issuer.keys[0]
    attacker = Key("RS256")
    public_pem = main.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "other repository": issuer.github(audience, repository="acme/other"),
        "other branch": issuer.github(audience, ref="refs/heads/feature"),
        "pull request": issuer.github(audience, sub="repo:acme/deploy:pull_request"),
        "same owner only": issuer.github(audience, repository="acme/deploy-evil"),
        "wrong audience": issuer.github("https://elsewhere.example"),
        "expired": issuer.token(
            {"sub": "repo:acme/deploy:ref:refs/heads/main", "aud": audience}, exp=int(time.time()) - 120
        ),
        "not yet valid": issuer.token(
            {"sub": "repo:acme/deploy:ref:refs/heads/main", "aud": audience}, nbf=int(time.time()) + 600
        ),
        "no exp": _forged(issuer, audience, {"kid": main.kid}, {"exp": None}, main.private, "RS256"),
        "alg none": _none_token(issuer, audience),
        "HS256 with the public key": _hs256(issuer, audience, main.kid, public_pem),
        "jku to the attacker's keys": _forged(
            issuer, audience, {"kid": attacker.kid, "jku": other.jwks_url}, {}, attacker.private, "RS256"
        ),
        "x5u": _forged(
            issuer, audience, {"kid": attacker.kid, "x5u": other.jwks_url}, {}, attacker.private, "RS256"
        ),
        "embedded jwk": _forged(
            issuer, audience, {"kid": attacker.kid, "jwk": attacker.jwk}, {}, attacker.private, "RS256"
        ),
        "signed by another issuer's key": _forged(
            issuer, audience, {"kid": other.keys[0].kid}, {}, other.keys[0].private, "RS256"
        ),
        "right kid, wrong key": _forged(issuer, audience, {"kid": main.kid}, {}, attacker.private, "RS256"),
        "RSA key as ES256": _forged(
            issuer, audience, {"kid": main.kid, "alg": "ES256"}, {}, Key("ES256").private, "ES256"
        ),
        "crit header": _forged(
            issuer, audience, {"kid": main.kid, "crit": ["exp"]}, {}, main.private, "RS256"
        ),
        "exp as a string": _forged(
            issuer, audience, {"kid": main.kid}, {"exp": str(int(time.time()) + 300)}, main.private, "RS256"
        ),
    }


def _part(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(issuer: Issuer, audience: str) -> dict[str, Any]:
    return {
        "iss": issuer.url,
        "aud": audience,
        "sub": "repo:acme/deploy:ref:refs/heads/main",
        "exp": int(time.time()) + 300,
    }


def _hs256(issuer: Issuer, audience: str, kid: str, secret: bytes) -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public key (PyJWT refuses to
    sign it, so it is built by hand)."""
    signing = f"{_part({'alg': 'HS256', 'kid': kid})}.{_part(_claims(issuer, audience))}"
    return f"{signing}.{_part(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def test_refused_tokens_never_reach_the_upstream(
    gw: Gateway, issuer: Issuer, github: dict[str, Any], recorder: Upstream
) -> None:
    # The issuer's key is cached first, so every refusal below is about the token itself.
    within(
        1.5,
        lambda: proxy(gw, "/whoami", issuer.github(github["audience"])).status_code == 200,
        "a good token",
    )
    untrusted = gw.metric("gateway_auth_failures_total", reason="untrusted")
    with Issuer() as other:
        fetched_before = other.fetches
        for name, token in refused_tokens(issuer, github["audience"], other).items():
            mark = new_mark()
            response = proxy(gw, "/whoami", token, **{MARK: mark})
            assert response.status_code == 401, (name, response.status_code, response.text)
            assert_invalid_token(response)
            assert "repo:" not in response.text and github["entry"]["identityId"] not in response.text, name
            assert recorder.marked(mark) == [], name
        assert other.fetches == fetched_before == 0  # jku/x5u were never fetched
    # Verified, but no entry: other repository, other branch, pull request, same owner, audience.
    assert gw.metric("gateway_auth_failures_total", reason="untrusted") - untrusted == 5
    assert gw.metric("gateway_jwks_fetch_total", issuer=issuer.url, outcome="ok") >= 1


def test_untrusted_issuer_falls_through_to_401(gw: Gateway, github: dict[str, Any]) -> None:
    with Issuer() as stranger:
        response = proxy(gw, "/whoami", stranger.github(github["audience"]))
        assert_invalid_token(response)
        assert stranger.fetches == 0 and stranger.discoveries == 0


def test_route_that_does_not_accept_oidc(gw: Gateway, issuer: Issuer, github: dict[str, Any]) -> None:
    response = proxy(gw, "/keys-only", issuer.github(github["audience"]))
    assert_invalid_token(response)


def test_kubernetes_token_by_discovery_and_wildcard(gw: Gateway, admin: Api, recorder: Upstream) -> None:
    with Issuer(path="/cluster") as cluster:
        client = admin.create_client(unique("k8s"))["clientId"]
        audience = unique("gateway")
        trust(
            admin,
            client,
            cluster.url,
            audience,
            {"sub": "system:serviceaccount:payments:*"},
            preset="kubernetes",
        )
        mark = new_mark()
        token = cluster.kubernetes(audience, "payments", "billing")
        response = within(
            1.5, lambda: (r := proxy(gw, "/whoami", token, **{MARK: mark})).status_code == 200 and r, "trust"
        )
        assert response.status_code == 200
        assert headers_named(recorder.marked(mark)[-1], "x-gateway-subject") == [
            "system:serviceaccount:payments:billing"
        ]
        assert cluster.discoveries >= 1
        # `*` stays within one segment: another namespace does not match.
        assert_invalid_token(proxy(gw, "/whoami", cluster.kubernetes(audience, "other", "billing")))


def test_rotation_unknown_kid_refetches_once(gw: Gateway, admin: Api) -> None:
    with Issuer() as rotating:
        client = admin.create_client(unique("rot"))["clientId"]
        audience = unique("aud")
        trust(admin, client, rotating.url, audience, {"sub": "workload"})
        first = rotating.token({"sub": "workload", "aud": audience})
        within(1.5, lambda: proxy(gw, "/whoami", first).status_code == 200, "trust")
        new_key = rotating.rotate("ES256")
        fetches = rotating.fetches
        second = rotating.token({"sub": "workload", "aud": audience}, key=new_key)
        # Refetches are at most one a second per worker here (30 s by default): poll to a deadline.
        within(3.0, lambda: proxy(gw, "/whoami", second).status_code == 200, "the rotated key")
        assert 1 <= rotating.fetches - fetches <= 2 * gw.workers
        assert proxy(gw, "/whoami", first).status_code == 200  # the old key is still published
        # PS256 (RSA-PSS), where an issuer uses it: an RSA key checks it, an EC key never does.
        pss = rotating.rotate("PS256")
        third = rotating.token({"sub": "workload", "aud": audience}, key=pss)
        within(3.0, lambda: proxy(gw, "/whoami", third).status_code == 200, "the PS256 key")
        assert_invalid_token(proxy(gw, "/whoami", jwt.encode(
            {"iss": rotating.url, "aud": audience, "sub": "workload", "exp": int(time.time()) + 60},
            new_key.private, algorithm="ES256", headers={"kid": pss.kid})))
