"""Every RFC 6749 §5.2 error path of POST /oauth/token (issue 4, "Bad input"): the right status
and `error`, `Cache-Control: no-store`, a JSON body {error, error_description}, and nothing issued
(no access_token in the body, gateway_tokens_issued_total unmoved)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest

from gateway.config import Tokens
from tests.oauth.conftest import Svc, new_client
from tests.oauth.deployment import API_AUDIENCE
from tests.oauth.helpers import (
    ASSERTION_TYPE,
    JWT_BEARER,
    KeyPair,
    assert_issued,
    assert_oauth_error,
    assertion_form,
    basic,
    client_assertion,
    client_jwt,
    ec_key,
    ed25519_key,
    post,
    rsa_key,
    unsigned_jwt,
)
from tests.support.harness import Gateway
from tests.support.processes import Upstream, http_client


@contextmanager
def issues_nothing(gw: Gateway) -> Iterator[None]:
    before = gw.tokens_issued()
    yield
    assert gw.tokens_issued() == before, "a token was issued on an error path"


def cc(svc: Svc, **extra: str) -> dict[str, Any]:
    """client_credentials with client_secret_basic."""
    return {
        "data": {"grant_type": "client_credentials", **extra},
        "headers": {"Authorization": basic(svc.client_id, svc.secret)},
    }


def keyed_client(gw: Gateway, pair: KeyPair | None = None) -> tuple[Svc, KeyPair]:
    svc = new_client(gw)
    pair = pair or ed25519_key()
    gw.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())
    return svc, pair


def test_success_shape(gw: Gateway) -> None:
    """The control for everything below: RFC 6749 §5.1, and the counter moves by one."""
    svc = new_client(gw)
    before = gw.tokens_issued()
    response = post(gw.token_url, **cc(svc))
    body = assert_issued(response)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert gw.tokens_issued() == before + 1, "gateway_tokens_issued_total did not count the token"


def test_issued_tokens_are_counted_by_grant_type(gw: Gateway) -> None:
    svc = new_client(gw, access_key=True)
    cc_before = gw.metric("gateway_tokens_issued_total", grant_type="client_credentials")
    jb_before = gw.metric("gateway_tokens_issued_total", grant_type="jwt_bearer")
    assert_issued(post(gw.token_url, **cc(svc)))
    assert_issued(
        post(
            gw.token_url,
            data={"grant_type": JWT_BEARER, "assertion": client_jwt(svc.access_key, gw.public_url)},
        )
    )
    assert gw.metric("gateway_tokens_issued_total", grant_type="client_credentials") == cc_before + 1
    assert gw.metric("gateway_tokens_issued_total", grant_type="jwt_bearer") == jb_before + 1


# --- grant type and request shape ----------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "authorization_code",
        "refresh_token",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "CLIENT_CREDENTIALS",
        "made-up",
    ],
)
def test_unsupported_grant_type(gw: Gateway, grant_type: str) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        response = post(
            gw.token_url,
            data={"grant_type": grant_type, "username": "u", "password": "p"},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
        assert_oauth_error(response, 400, "unsupported_grant_type")


def test_missing_grant_type(gw: Gateway) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        assert_oauth_error(
            post(
                gw.token_url,
                data={"scope": "things.read"},
                headers={"Authorization": basic(svc.client_id, svc.secret)},
            ),
            400,
            "invalid_request",
        )
        assert_oauth_error(
            post(gw.token_url, json={"clientId": svc.client_id, "clientSecret": svc.secret}),
            400,
            "invalid_request",
        )


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=client_credentials&grant_type=client_credentials",
        "grant_type=client_credentials&scope=things.read&scope=things.write",
        "grant_type=client_credentials&audience=a&audience=b",
        "grant_type=client_credentials&client_id={id}&client_id={id}",
    ],
)
def test_duplicated_parameters(gw: Gateway, body: str) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        response = post(
            gw.token_url,
            content=body.format(id=svc.client_id).encode(),
            headers={
                "Authorization": basic(svc.client_id, svc.secret),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert_oauth_error(response, 400, "invalid_request")


def test_duplicated_secret_in_the_body(gw: Gateway) -> None:
    svc = new_client(gw)
    body = f"grant_type=client_credentials&client_id={svc.client_id}&client_secret={svc.secret}&client_secret={svc.secret}"
    with issues_nothing(gw):
        response = post(
            gw.token_url, content=body.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert_oauth_error(response, 400, "invalid_request")


def test_two_authentication_methods(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    aud = gw.public_url
    with issues_nothing(gw):
        # Basic and client_secret_post.
        response = post(
            gw.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": svc.client_id,
                "client_secret": svc.secret,
            },
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
        assert_oauth_error(response, 400, "invalid_request")
        # Basic and private_key_jwt.
        response = post(
            gw.token_url,
            data=assertion_form(client_assertion(pair, svc.client_id, aud)),
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
        assert_oauth_error(response, 400, "invalid_request")
        # client_secret_post and private_key_jwt.
        response = post(
            gw.token_url,
            data=assertion_form(client_assertion(pair, svc.client_id, aud), client_secret=svc.secret),
        )
        assert_oauth_error(response, 400, "invalid_request")
        # jwt-bearer carries no other client authentication.
        svc2 = new_client(gw, access_key=True)
        response = post(
            gw.token_url,
            data={"grant_type": JWT_BEARER, "assertion": client_jwt(svc2.access_key, gw.public_url)},
            headers={"Authorization": basic(svc2.client_id, svc2.secret)},
        )
        assert_oauth_error(response, 400, "invalid_request")
        response = post(
            gw.token_url,
            data={
                "grant_type": JWT_BEARER,
                "assertion": client_jwt(svc2.access_key, gw.public_url),
                "client_secret": svc2.secret,
                "client_id": svc2.client_id,
            },
        )
        assert_oauth_error(response, 400, "invalid_request")


def test_two_authorization_headers(gw: Gateway) -> None:
    """Two Authorization headers are two credentials (contract §4 says so for the proxy; at the
    token endpoint it is two client authentications): which one counts must not be a guess."""
    svc = new_client(gw)
    other = new_client(gw)
    pairs = [
        [("Authorization", basic(svc.client_id, svc.secret)), ("Authorization", "Bearer x.y.z")],
        [
            ("Authorization", basic(svc.client_id, svc.secret)),
            ("Authorization", basic(other.client_id, other.secret)),
        ],
    ]
    with issues_nothing(gw):
        for headers in pairs:
            response = post(gw.token_url, data={"grant_type": "client_credentials"}, headers=headers)
            assert_oauth_error(response, 400, "invalid_request")


def test_mismatched_client_id(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    other = new_client(gw)
    with issues_nothing(gw):
        response = post(gw.token_url, **cc(svc, client_id=other.client_id))
        assert_oauth_error(response, 400, "invalid_request")
        response = post(
            gw.token_url,
            data=assertion_form(
                client_assertion(pair, svc.client_id, gw.public_url), client_id=other.client_id
            ),
        )
        assert_oauth_error(response, 400, "invalid_request")
        svc2 = new_client(gw, access_key=True)
        response = post(
            gw.token_url,
            data={
                "grant_type": JWT_BEARER,
                "assertion": client_jwt(svc2.access_key, gw.public_url),
                "client_id": other.client_id,
            },
        )
        assert_oauth_error(response, 400, "invalid_request")
    # The same client id in both places is fine.
    assert_issued(post(gw.token_url, **cc(svc, client_id=svc.client_id)))


# --- client authentication failures --------------------------------------------------------


def _invalid_client(response: httpx.Response, basic_used: bool) -> dict[str, Any]:
    body = assert_oauth_error(response, 401, "invalid_client")
    challenge = response.headers.get("www-authenticate", "")
    if basic_used:
        assert challenge.lower().startswith("basic"), response.headers
    return body


def test_unknown_client_and_wrong_secret_look_the_same(gw: Gateway) -> None:
    svc = new_client(gw)
    other = new_client(gw)
    unknown = "sc_" + "Q" * 22
    wrong = svc.secret[:-10] + "ZZZZZZZZZZ"
    with issues_nothing(gw):
        answers = {
            "unknown client": post(
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(unknown, svc.secret)},
            ),
            "wrong secret": post(
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(svc.client_id, wrong)},
            ),
            "another's secret": post(
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(svc.client_id, other.secret)},
            ),
            "garbage secret": post(
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(svc.client_id, "hunter2")},
            ),
            "not a client id": post(
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic("admin", "hunter2")},
            ),
        }
        bodies = {name: _invalid_client(r, basic_used=True) for name, r in answers.items()}
        challenges = {r.headers["www-authenticate"] for r in answers.values()}
    reference = bodies["unknown client"]
    for name, body in bodies.items():
        assert {k: v for k, v in body.items() if k != "request_id"} == {
            k: v for k, v in reference.items() if k != "request_id"
        }, f"{name} answers differently from an unknown client"
    assert len(challenges) == 1

    with issues_nothing(gw):
        # client_secret_post: same 401, same body.
        r1 = post(
            gw.token_url,
            data={"grant_type": "client_credentials", "client_id": unknown, "client_secret": svc.secret},
        )
        r2 = post(
            gw.token_url,
            data={"grant_type": "client_credentials", "client_id": svc.client_id, "client_secret": wrong},
        )
        b1, b2 = _invalid_client(r1, basic_used=False), _invalid_client(r2, basic_used=False)
        assert b1["error_description"] == b2["error_description"]


def test_malformed_basic_credentials(gw: Gateway) -> None:
    with issues_nothing(gw):
        for value in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic ===="):
            response = post(
                gw.token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": value}
            )
            assert response.status_code in (400, 401), response.text
            assert_oauth_error(
                response,
                response.status_code,
                "invalid_client" if response.status_code == 401 else "invalid_request",
            )


def test_no_client_authentication(gw: Gateway) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        response = post(gw.token_url, data={"grant_type": "client_credentials", "client_id": svc.client_id})
        assert_oauth_error(response, 401, "invalid_client")


def test_revoked_secret(gw: Gateway) -> None:
    svc = new_client(gw)
    second = gw.admin().create_secret(svc.client_id)
    assert_issued(post(gw.token_url, **cc(svc)))
    assert gw.admin().delete(f"/v1/clients/{svc.client_id}/secrets/{svc.secret_id}").status_code == 204
    with issues_nothing(gw):
        response = post(gw.token_url, **cc(svc))
        _invalid_client(response, basic_used=True)
    # The client's other secret still works.
    assert_issued(
        post(
            gw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, second["clientSecret"])},
        )
    )


def test_revoked_secret_via_the_cli(gw: Gateway) -> None:
    svc = new_client(gw, secret=False)
    made = gw.run_json("secrets", "create", "--client", svc.client_id)
    assert made["clientSecret"].startswith("gwcs_")
    auth = {"Authorization": basic(svc.client_id, made["clientSecret"])}
    assert_issued(post(gw.token_url, data={"grant_type": "client_credentials"}, headers=auth))
    gw.run_json("secrets", "revoke", "--client", svc.client_id, made["secretId"])
    with issues_nothing(gw):
        _invalid_client(
            post(gw.token_url, data={"grant_type": "client_credentials"}, headers=auth), basic_used=True
        )


# --- private_key_jwt assertions ------------------------------------------------------------


def test_private_key_jwt_controls(gw: Gateway) -> None:
    """Audiences that are right (issuer, token endpoint, a list holding one), and every key type."""
    for pair in (ed25519_key(), ec_key(), rsa_key()):
        svc, _ = keyed_client(gw, pair)
        for aud in (
            gw.public_url,
            f"{gw.public_url}/oauth/token",
            ["https://elsewhere.example.com", gw.public_url],
        ):
            assert_issued(post(gw.token_url, data=assertion_form(client_assertion(pair, svc.client_id, aud))))


def test_replayed_private_key_jwt_assertion(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    assertion = client_assertion(pair, svc.client_id, gw.public_url)
    assert_issued(post(gw.token_url, data=assertion_form(assertion)))
    with issues_nothing(gw):
        assert_oauth_error(post(gw.token_url, data=assertion_form(assertion)), 401, "invalid_client")
        # A new signature over the same jti is the same assertion.
        jti = jwt.decode(assertion, options={"verify_signature": False})["jti"]
        again = client_assertion(pair, svc.client_id, gw.public_url, jti=jti, lifetime=200)
        assert_oauth_error(post(gw.token_url, data=assertion_form(again)), 401, "invalid_client")
    # The same jti from another client is another assertion.
    other, other_pair = keyed_client(gw)
    assert_issued(
        post(
            gw.token_url,
            data=assertion_form(client_assertion(other_pair, other.client_id, gw.public_url, jti=jti)),
        )
    )


def test_key_location_headers_are_never_fetched_nor_trusted(gw: Gateway, upstream: Upstream) -> None:
    """jku / x5u / jwk / x5c in an assertion's header are ignored (contract §2): pointing them at
    a server we watch shows the gateway never fetches them, and an attacker's key embedded in
    the header verifies nothing."""
    svc, pair = keyed_client(gw)
    probe = f"/jku-probe-{uuid.uuid4().hex}"
    mine = ec_key()
    headers = {"jku": upstream.url + probe, "x5u": upstream.url + probe + "-x5u", "jwk": mine.public_jwk()}
    with issues_nothing(gw):
        forged = client_assertion(mine, svc.client_id, gw.public_url, headers=headers)
        assert_oauth_error(post(gw.token_url, data=assertion_form(forged)), 401, "invalid_client")
    # With the client's own key the same headers change nothing: the assertion is taken.
    signed = client_assertion(pair, svc.client_id, gw.public_url, headers={"jku": upstream.url + probe})
    assert_issued(post(gw.token_url, data=assertion_form(signed)))
    time.sleep(0.3)
    assert upstream.with_path_part(probe) == [], "the gateway fetched a jku/x5u URL"


def test_unknown_crit_header(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    with issues_nothing(gw):
        assertion = client_assertion(pair, svc.client_id, gw.public_url, headers={"crit": ["exp"]})
        assert_oauth_error(post(gw.token_url, data=assertion_form(assertion)), 401, "invalid_client")


def test_private_key_jwt_signed_with_an_access_key(gw: Gateway) -> None:
    """Contract §3: the assertion may be signed by one of the client's access keys (kid = key id,
    or no kid: the client's active keys are tried)."""
    from gateway.crypto import parse_access_key

    svc = new_client(gw, secret=False, access_key=True)
    pair = KeyPair("EdDSA", parse_access_key(svc.access_key).private_key())
    for kid in (svc.key_id, None):
        assert_issued(
            post(
                gw.token_url,
                data=assertion_form(client_assertion(pair, svc.client_id, gw.public_url, kid=kid)),
            )
        )
    # Another client's access key is not this client's.
    other = new_client(gw, secret=False, access_key=True)
    stranger = KeyPair("EdDSA", parse_access_key(other.access_key).private_key())
    with issues_nothing(gw):
        for kid in (other.key_id, None):
            response = post(
                gw.token_url,
                data=assertion_form(client_assertion(stranger, svc.client_id, gw.public_url, kid=kid)),
            )
            assert_oauth_error(response, 401, "invalid_client")


def test_tokens_and_client_jwts_are_no_client_assertion(gw: Gateway) -> None:
    svc = new_client(gw, access_key=True)
    token = assert_issued(post(gw.token_url, **cc(svc)))["access_token"]
    with issues_nothing(gw):
        for assertion in (
            token,
            client_jwt(svc.access_key, gw.public_url, jti=uuid.uuid4().hex),
            "not-a-jwt",
        ):
            assert_oauth_error(post(gw.token_url, data=assertion_form(assertion)), 401, "invalid_client")


def test_private_key_jwt_without_jti(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    with issues_nothing(gw):
        assert_oauth_error(
            post(
                gw.token_url,
                data=assertion_form(client_assertion(pair, svc.client_id, gw.public_url, jti=None)),
            ),
            401,
            "invalid_client",
        )


@pytest.mark.parametrize(
    "what",
    [
        "exp beyond the limit",
        "exp two days ahead",
        "lifetime over the limit",
        "expired",
        "no exp",
        "iat in the future",
        "exp not a number",
    ],
)
def test_assertion_times(gw: Gateway, what: str) -> None:
    """Against tokens.assertion_max_lifetime and tokens.leeway (the shared gateway runs on the
    defaults, read from gateway.config so that a new default does not break the test)."""
    limit, leeway = int(Tokens().assertion_max_lifetime), int(Tokens().leeway)
    svc, pair = keyed_client(gw)
    now = int(time.time())
    if what == "exp beyond the limit":
        # Control: just within the limit is taken.
        ok = client_assertion(pair, svc.client_id, gw.public_url, lifetime=limit - 60)
        assert_issued(post(gw.token_url, data=assertion_form(ok)))
    extra: dict[str, Any] = {  # type: ignore[assignment]
        "exp beyond the limit": {"iat": now, "exp": now + limit + leeway + 120},
        "exp two days ahead": {"iat": now, "exp": now + 2 * 86400},
        "lifetime over the limit": {"iat": now - limit - leeway - 60, "exp": now + 60},
        "expired": {"iat": now - 400, "exp": now - 300},
        "no exp": {"exp": None},
        "iat in the future": {"iat": now + 300, "exp": now + 400},
        "exp not a number": {"exp": "soon"},
    }[what]
    claims = {
        "iss": svc.client_id,
        "sub": svc.client_id,
        "aud": gw.public_url,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    claims.update(extra)
    claims = {k: v for k, v in claims.items() if v is not None}
    if what == "exp not a number":
        assertion = jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), pair.private, algorithm=pair.alg)
    else:
        assertion = jwt.encode(claims, pair.private, algorithm=pair.alg)
    with issues_nothing(gw):
        assert_oauth_error(post(gw.token_url, data=assertion_form(assertion)), 401, "invalid_client")


@pytest.mark.parametrize(
    "aud",
    [
        "https://elsewhere.example.com",
        "admin",
        "token endpoint with a slash",
        "introspection endpoint",
        "none",
        "empty list",
    ],
)
def test_assertion_wrong_audience(gw: Gateway, aud: str) -> None:
    svc, pair = keyed_client(gw)
    value: Any = {
        "https://elsewhere.example.com": "https://elsewhere.example.com",
        "admin": gw.admin_url,
        "token endpoint with a slash": f"{gw.public_url}/oauth/token/",
        "introspection endpoint": f"{gw.public_url}/oauth/introspect",
        "none": None,
        "empty list": [],
    }[aud]
    if value is None:
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": svc.client_id,
                "sub": svc.client_id,
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            pair.private,
            algorithm=pair.alg,
        )
    else:
        assertion = client_assertion(pair, svc.client_id, value)
    with issues_nothing(gw):
        assert_oauth_error(post(gw.token_url, data=assertion_form(assertion)), 401, "invalid_client")


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    head = {"alg": "HS256", "typ": "JWT"}
    signing_input = ".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode()).decode() for part in (head, claims)
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(mac).decode()}"


def test_hs256_and_none_assertions(gw: Gateway) -> None:
    svc, pair = keyed_client(gw)
    claims = jwt.decode(
        client_assertion(pair, svc.client_id, gw.public_url), options={"verify_signature": False}
    )
    public_pem = pair.public_pem().encode()
    public_json = json.dumps(pair.public_jwk()).encode()
    with issues_nothing(gw):
        for secret in (svc.secret.encode(), public_pem, public_json):  # client_secret_jwt; key confusion
            forged = _hs256(dict(claims, jti=uuid.uuid4().hex), secret)
            assert_oauth_error(post(gw.token_url, data=assertion_form(forged)), 401, "invalid_client")
        for head in ({"alg": "none"}, {"alg": "None"}, {"alg": "none", "typ": "JWT"}):
            forged = unsigned_jwt(head, dict(claims, jti=uuid.uuid4().hex))
            assert_oauth_error(post(gw.token_url, data=assertion_form(forged)), 401, "invalid_client")
        # A bad assertion type, an empty assertion.
        form = assertion_form(client_assertion(pair, svc.client_id, gw.public_url))
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
        assert_oauth_error(post(gw.token_url, data=form), 400, "invalid_request")
        assert_oauth_error(post(gw.token_url, data=assertion_form("")), 400, "invalid_request")


def test_jwt_bearer_assertion_errors(gw: Gateway) -> None:
    svc = new_client(gw, access_key=True)
    from gateway.crypto import parse_access_key

    parsed = parse_access_key(svc.access_key)
    good = jwt.decode(client_jwt(svc.access_key, gw.public_url), options={"verify_signature": False})
    now = int(time.time())
    bad = {
        # Client JWTs may live up to tokens.max_lifetime (24 h, what the SDKs sign); beyond: refused.
        "exp two days ahead": client_jwt(svc.access_key, gw.public_url, iat=now, exp=now + 2 * 86400),
        "wrong aud": client_jwt(svc.access_key, gw.public_url, aud="https://elsewhere.example.com"),
        "admin origin as aud": client_jwt(svc.access_key, gw.public_url, aud=f"{gw.admin_url}/oauth/token"),
        "expired": client_jwt(svc.access_key, gw.public_url, iat=now - 7200, exp=now - 3600),
        "HS256 with the access key's public half": _hs256_with_kid(good, parsed.public_key(), parsed.key_id),
        "alg none": unsigned_jwt({"alg": "none", "kid": parsed.key_id}, good),
        "unknown kid": client_jwt(svc.access_key, gw.public_url, header_kid="acc_" + "Q" * 22),
        "unknown crit": client_jwt(svc.access_key, gw.public_url, header_crit=["exp"]),
        "wrong issuer": client_jwt(
            svc.access_key, gw.public_url, iss=f"{gw.public_url}/v1/clients/sc_{'Q' * 22}"
        ),
    }
    with issues_nothing(gw):
        for name, assertion in bad.items():
            response = post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion})
            assert response.status_code == 400, (name, response.text)
            assert_oauth_error(response, 400, "invalid_grant")
        assert_oauth_error(post(gw.token_url, data={"grant_type": JWT_BEARER}), 400, "invalid_request")


def _hs256_with_kid(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    head = {"alg": "HS256", "kid": kid}
    signing_input = ".".join(
        jwt.utils.base64url_encode(json.dumps(p).encode()).decode() for p in (head, claims)
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(mac).decode()}"


# --- scope and audience --------------------------------------------------------------------


def test_scope_escalation(gw: Gateway) -> None:
    svc = new_client(gw, scopes=("things.read",))
    none = new_client(gw, scopes=())
    with issues_nothing(gw):
        assert_oauth_error(
            post(gw.token_url, **cc(svc, scope="things.read things.write")), 400, "invalid_scope"
        )
        assert_oauth_error(post(gw.token_url, **cc(svc, scope="admin")), 400, "invalid_scope")
        assert_oauth_error(post(gw.token_url, **cc(none, scope="things.read")), 400, "invalid_scope")
        assert_oauth_error(
            post(
                gw.token_url,
                json={
                    "clientId": svc.client_id,
                    "clientSecret": svc.secret,
                    "grantType": "client_credentials",
                    "scope": ["things.read", "things.write"],
                },
            ),
            400,
            "invalid_scope",
        )
    # Controls: a subset is fine; no scope at all gives what the client has (possibly nothing).
    assert assert_issued(post(gw.token_url, **cc(svc, scope="things.read")))["scope"] == "things.read"
    assert assert_issued(post(gw.token_url, **cc(none)))["scope"] == ""


def test_unregistered_audience(gw: Gateway) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        assert_oauth_error(
            post(gw.token_url, **cc(svc, audience="https://other.example.com")), 400, "invalid_target"
        )
        assert_oauth_error(
            post(gw.token_url, **cc(svc, resource="https://other.example.com")), 400, "invalid_target"
        )
        # Both bad: scope is checked first.
        assert_oauth_error(
            post(gw.token_url, **cc(svc, scope="admin", audience="https://other.example.com")),
            400,
            "invalid_scope",
        )
        # audience and resource that disagree.
        assert_oauth_error(
            post(gw.token_url, **cc(svc, audience=API_AUDIENCE, resource="https://other.example.com")),
            400,
            "invalid_request",
        )
    issued = assert_issued(post(gw.token_url, **cc(svc, resource=API_AUDIENCE)))
    assert jwt.decode(issued["access_token"], options={"verify_signature": False})["aud"] == API_AUDIENCE


# --- transport: method, query string, size, content type ------------------------------------


def test_get_instead_of_post(gw: Gateway) -> None:
    svc = new_client(gw)
    with issues_nothing(gw), http_client(fresh=True) as h:
        response = h.get(
            gw.token_url,
            params={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
        assert_oauth_error(response, 400, "invalid_request")
        for method in ("PUT", "DELETE", "PATCH"):
            response = h.request(
                method,
                gw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(svc.client_id, svc.secret)},
            )
            assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("where", ["client_secret", "client_assertion", "both", "GET"])
def test_credentials_in_the_query_string(gw: Gateway, where: str) -> None:
    svc, pair = keyed_client(gw)
    assertion = client_assertion(pair, svc.client_id, gw.public_url)
    params = {
        "client_secret": {"client_id": svc.client_id, "client_secret": svc.secret},
        "client_assertion": {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
        "both": {"client_id": svc.client_id, "client_secret": svc.secret, "grant_type": "client_credentials"},
        "GET": {"client_id": svc.client_id, "client_secret": svc.secret, "grant_type": "client_credentials"},
    }[where]
    with issues_nothing(gw), http_client(fresh=True) as h:
        if where == "GET":
            response = h.get(gw.token_url, params=params)
        else:
            response = h.post(gw.token_url, params=params, data={"grant_type": "client_credentials"})
        assert_oauth_error(response, 400, "invalid_request")


def test_oversized_body(gw: Gateway) -> None:
    svc = new_client(gw)
    padding = "x" * (64 * 1024 + 1)
    with issues_nothing(gw):
        response = post(
            gw.token_url,
            data={"grant_type": "client_credentials", "padding": padding},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
        assert_oauth_error(response, 400, "invalid_request")
        response = post(
            gw.token_url,
            json={
                "grant_type": "client_credentials",
                "client_id": svc.client_id,
                "client_secret": svc.secret,
                "padding": padding,
            },
        )
        assert_oauth_error(response, 400, "invalid_request")

        # Chunked, without a Content-Length.
        def chunks() -> Iterator[bytes]:
            yield b"grant_type=client_credentials&padding="
            for _ in range(80):
                yield b"y" * 1024

        response = post(
            gw.token_url,
            content=chunks(),
            headers={
                "Authorization": basic(svc.client_id, svc.secret),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert_oauth_error(response, 400, "invalid_request")
    # Just under the limit is fine.
    small = "x" * (60 * 1024)
    assert_issued(
        post(
            gw.token_url,
            data={"grant_type": "client_credentials", "padding": small},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
    )


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/jwt"]
)
def test_other_content_types(gw: Gateway, content_type: str) -> None:
    svc = new_client(gw)
    body = f"grant_type=client_credentials&client_id={svc.client_id}&client_secret={svc.secret}".encode()
    with issues_nothing(gw):
        response = post(gw.token_url, content=body, headers={"Content-Type": content_type})
        assert_oauth_error(response, 400, "invalid_request")


def test_malformed_form_body(gw: Gateway) -> None:
    svc = new_client(gw)
    with issues_nothing(gw):
        response = post(
            gw.token_url,
            content=b"\xff\xfe=\xff",
            headers={
                "Authorization": basic(svc.client_id, svc.secret),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert_oauth_error(response, 400, "invalid_request")
