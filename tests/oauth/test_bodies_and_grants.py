"""The token endpoint's other styles (contract §3): JSON bodies in snake_case and SuperTokens'
camelCase, an access key used as a client secret (Authress's style), and the jwt-bearer grant
with a client-signed JWT as `assertion` or as `Authorization: Bearer` (Raystack Frontier's
style). Tokens, identity JWTs and foreign JWTs are no jwt-bearer assertion."""

from __future__ import annotations

import time
import uuid
import warnings

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.client import ServiceClientTokenProvider
from tests.oauth.conftest import Svc, new_client
from tests.oauth.deployment import API_AUDIENCE
from tests.oauth.helpers import (
    JWT_BEARER,
    assert_issued,
    assert_oauth_error,
    basic,
    client_jwt,
    post,
    proxy_get,
    raw_basic,
    unverified,
)
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import Upstream, http_client, new_mark


def claims_of(token: str) -> dict[str, object]:
    return unverified(token)[1]


# --- JSON bodies ---------------------------------------------------------------------------


def test_json_snake_case(gw: Gateway) -> None:
    svc = new_client(gw)
    response = post(
        gw.token_url,
        json={
            "grant_type": "client_credentials",
            "client_id": svc.client_id,
            "client_secret": svc.secret,
            "scope": "things.read",
        },
    )
    issued = assert_issued(response)
    assert issued["scope"] == "things.read"
    claims = claims_of(issued["access_token"])
    assert claims["sub"] == svc.client_id and claims["aud"] == gw.public_url
    assert proxy_get(gw, "/things", issued["access_token"]).status_code == 200


def test_json_camel_case_with_scope_array_and_audience(gw: Gateway, upstream: Upstream) -> None:
    svc = new_client(gw)
    response = post(
        gw.token_url,
        json={
            "clientId": svc.client_id,
            "clientSecret": svc.secret,
            "grantType": "client_credentials",
            "scope": ["things.read", "things.write"],
            "audience": API_AUDIENCE,
        },
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    issued = assert_issued(response)
    assert issued["scope"].split() == ["things.read", "things.write"]
    claims = claims_of(issued["access_token"])
    assert claims["aud"] == API_AUDIENCE and claims["client_id"] == svc.client_id
    mark = new_mark()
    with http_client(fresh=True) as h:
        answer = h.post(
            gw.proxy_url + "/things",
            headers={"Authorization": f"Bearer {issued['access_token']}", "x-test-mark": mark},
        )
    assert answer.status_code == 200, answer.text
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-auth-method") == ["gateway_jwt"]


def test_json_audience_as_a_one_element_array(gw: Gateway) -> None:
    svc = new_client(gw)
    response = post(
        gw.token_url,
        json={
            "clientId": svc.client_id,
            "clientSecret": svc.secret,
            "grantType": "client_credentials",
            "audience": [API_AUDIENCE],
        },
    )
    assert claims_of(assert_issued(response)["access_token"])["aud"] == API_AUDIENCE


def test_json_refuses_what_a_form_would_refuse(gw: Gateway) -> None:
    svc = new_client(gw)
    # The same parameter twice, once in each spelling.
    response = post(
        gw.token_url,
        json={
            "grant_type": "client_credentials",
            "client_id": svc.client_id,
            "clientId": svc.client_id,
            "client_secret": svc.secret,
        },
    )
    assert_oauth_error(response, 400, "invalid_request")
    # Not an object, not JSON, a secret that is not a string.
    wrong_type = f'{{"grant_type": "client_credentials", "client_id": "{svc.client_id}", "client_secret": 5}}'
    for body in (b"[]", b"{not json", wrong_type.encode()):
        response = post(gw.token_url, content=body, headers={"Content-Type": "application/json"})
        assert_oauth_error(response, 400, "invalid_request")


# --- an access key as the client secret ----------------------------------------------------


def test_access_key_as_client_secret(gw: Gateway, upstream: Upstream) -> None:
    svc = new_client(gw, secret=False, access_key=True)
    requests = [
        {
            "data": {"grant_type": "client_credentials"},
            "headers": {"Authorization": basic(svc.client_id, svc.access_key)},
        },
        {
            "data": {
                "grant_type": "client_credentials",
                "client_id": svc.client_id,
                "client_secret": svc.access_key,
            }
        },
        {
            "json": {
                "grantType": "client_credentials",
                "clientId": svc.client_id,
                "clientSecret": svc.access_key,
            }
        },
    ]
    for kwargs in requests:
        issued = assert_issued(post(gw.token_url, **kwargs))
        claims = claims_of(issued["access_token"])
        assert claims["sub"] == svc.client_id
        mark = new_mark()
        assert proxy_get(gw, "/things", issued["access_token"], mark).status_code == 200
        [record] = upstream.marked(mark)
        assert headers_named(record, "x-gateway-auth-method") == ["gateway_jwt"]


def client_with_plus_in_its_key(gw: Gateway) -> Svc:
    """A client whose access key holds a `+` (its base64 part has one about 60 % of the time)."""
    for _ in range(30):
        svc = new_client(gw, secret=False, access_key=True)
        if "+" in svc.access_key:
            return svc
    raise AssertionError("30 access keys without a '+'")


def test_access_key_as_client_secret_in_plain_basic(gw: Gateway) -> None:
    """Most clients put the secret into Basic as it is (Authlib, curl -u, httpx and requests auth
    tuples), not form-urlencoded as RFC 6749 §2.3.1 asks. An access key's base64 holds `+`
    (and `/`), which form-decoding turns into a space; access keys never contain spaces, so the
    gateway can take them either way, and must, or such a client fails for most keys."""
    svc = client_with_plus_in_its_key(gw)
    # Form-urlencoded, per the RFC: works.
    assert_issued(
        post(
            gw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, svc.access_key)},
        )
    )
    # As it is.
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": raw_basic(svc.client_id, svc.access_key)},
    )
    assert_issued(response)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_access_key_as_client_secret_with_authlib(gw: Gateway) -> None:
    import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401  (installs its own "always" filter)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

    svc = client_with_plus_in_its_key(gw)
    with OAuth2Client(
        svc.client_id,
        svc.access_key,
        token_endpoint_auth_method="client_secret_basic",
        trust_env=False,
        timeout=10,
    ) as client:
        token = client.fetch_token(gw.token_url, grant_type="client_credentials", scope="things.read")
    assert token["scope"] == "things.read"
    with OAuth2Client(
        svc.client_id,
        svc.access_key,
        token_endpoint_auth_method="client_secret_post",
        trust_env=False,
        timeout=10,
    ) as client:
        token = client.fetch_token(gw.token_url, grant_type="client_credentials", scope="things.read")
    assert proxy_get(gw, "/things", token["access_token"]).status_code == 200


def test_another_clients_access_key_is_no_secret_of_this_one(gw: Gateway) -> None:
    svc = new_client(gw, secret=False)
    other = new_client(gw, secret=False, access_key=True)
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(svc.client_id, other.access_key)},
    )
    assert_oauth_error(response, 401, "invalid_client")


# --- the jwt-bearer grant ------------------------------------------------------------------


def cli_client_jwt(gw: Gateway, access_key: str) -> str:
    data = gw.run_json("token", "--access-key", access_key)
    assert data["token_type"] == "Bearer"
    return str(data["access_token"])


def test_jwt_bearer_with_the_assertion_in_the_form(gw: Gateway, upstream: Upstream) -> None:
    # The client, its scope, audience and access key from the command line.
    made = gw.run_json(
        "clients", "create", "--name", f"cli-{uuid.uuid4().hex[:6]}",
        "--scope", "things.read", "--audience", API_AUDIENCE, "--with-key",
    )  # fmt: skip
    client_id, access_key = made["clientId"], made["accessKey"]
    assertion = cli_client_jwt(gw, access_key)  # `gateway token --access-key`
    issued = assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}))
    claims = claims_of(issued["access_token"])
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["iss"] == gw.public_url and claims["aud"] == gw.public_url
    assert issued["scope"] == "things.read"
    svc = Svc(client_id, ["things.read"], [API_AUDIENCE])
    # The CLI's audience is the client's: a token for it can be asked for.
    response = post(
        gw.token_url,
        data={
            "grant_type": JWT_BEARER,
            "assertion": cli_client_jwt(gw, access_key),
            "audience": API_AUDIENCE,
        },
    )
    assert claims_of(assert_issued(response)["access_token"])["aud"] == API_AUDIENCE
    mark = new_mark()
    assert proxy_get(gw, "/things", issued["access_token"], mark).status_code == 200
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-auth-method") == ["gateway_jwt"]
    assert headers_named(record, "x-gateway-client-id") == [svc.client_id]


def test_jwt_bearer_with_the_assertion_as_a_bearer_header(gw: Gateway) -> None:
    svc = new_client(gw, secret=False, access_key=True)
    provider = ServiceClientTokenProvider(svc.access_key, gw.public_url)
    response = post(
        gw.token_url,
        data={"grant_type": JWT_BEARER, "scope": "things.read"},
        headers={"Authorization": f"Bearer {provider.get_token()}"},
    )
    issued = assert_issued(response)
    assert issued["scope"] == "things.read"
    assert claims_of(issued["access_token"])["sub"] == svc.client_id
    assert proxy_get(gw, "/things", issued["access_token"]).status_code == 200
    # JSON body, same header.
    response = post(
        gw.token_url,
        json={"grantType": JWT_BEARER, "audience": API_AUDIENCE},
        headers={"Authorization": f"Bearer {provider.get_token()}"},
    )
    assert claims_of(assert_issued(response)["access_token"])["aud"] == API_AUDIENCE


def test_jwt_bearer_assertion_in_both_places_is_invalid_request(gw: Gateway) -> None:
    svc = new_client(gw, secret=False, access_key=True)
    assertion = client_jwt(svc.access_key, gw.public_url)
    response = post(
        gw.token_url,
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        headers={"Authorization": f"Bearer {assertion}"},
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_jwt_bearer_claims_in_the_assertion_grant_nothing(gw: Gateway) -> None:
    svc = new_client(gw, secret=False, access_key=True, scopes=("things.read",))
    assertion = client_jwt(
        svc.access_key, gw.public_url, scope="things.read things.write admin", tenant="evil"
    )
    issued = assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}))
    claims = claims_of(issued["access_token"])
    assert claims["scope"] == "things.read"
    assert "tenant" not in claims
    # Asking for more than the client may have is invalid_scope, whatever the assertion says.
    assertion = client_jwt(svc.access_key, gw.public_url, scope="things.write")
    response = post(
        gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion, "scope": "things.write"}
    )
    assert_oauth_error(response, 400, "invalid_scope")


def test_jwt_bearer_refuses_tokens_identity_jwts_and_foreign_jwts(gw: Gateway, upstream: Upstream) -> None:
    svc = new_client(gw, access_key=True)
    gateway_token = assert_issued(
        post(
            gw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
    )["access_token"]
    mark = new_mark()
    assert proxy_get(gw, "/things", gateway_token, mark).status_code == 200
    [record] = upstream.marked(mark)
    [identity_jwt] = headers_named(record, "x-gateway-identity")

    stranger = Ed25519PrivateKey.generate()
    now = int(time.time())
    foreign = jwt.encode(
        {
            "iss": "https://idp.example.com",
            "sub": svc.client_id,
            "aud": gw.public_url,
            "iat": now,
            "exp": now + 300,
        },
        stranger,
        algorithm="EdDSA",
        headers={"kid": svc.key_id},
    )
    # A client JWT of this very client's issuer and kid, signed by another key.
    wrong_key = jwt.encode(
        claims_of(client_jwt(svc.access_key, gw.public_url)),
        stranger,
        algorithm="EdDSA",
        headers={"kid": svc.key_id},
    )
    for assertion in (gateway_token, identity_jwt, foreign, wrong_key, "not-a-jwt", "a.b.c"):
        before = gw.tokens_issued()
        response = post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion})
        assert_oauth_error(response, 400, "invalid_grant")
        response = post(
            gw.token_url, data={"grant_type": JWT_BEARER}, headers={"Authorization": f"Bearer {assertion}"}
        )
        assert_oauth_error(response, 400, "invalid_grant")
        assert gw.tokens_issued() == before


def test_jwt_bearer_with_a_revoked_key_or_a_disabled_client(gw: Gateway) -> None:
    svc = new_client(gw, secret=False, access_key=True)
    assertion = client_jwt(svc.access_key, gw.public_url)
    assert gw.admin().delete(f"/v1/clients/{svc.client_id}/access-keys/{svc.key_id}").status_code == 204

    def refused() -> bool:
        response = post(
            gw.token_url,
            data={"grant_type": JWT_BEARER, "assertion": client_jwt(svc.access_key, gw.public_url)},
        )
        return response.status_code == 400 and response.json()["error"] == "invalid_grant"

    deadline = time.monotonic() + 1.0
    while not refused():
        assert time.monotonic() < deadline, "a revoked access key still buys tokens after 1 s"
        time.sleep(0.05)
    del assertion

    other = new_client(gw, secret=False, access_key=True)
    assert gw.admin().patch(f"/v1/clients/{other.client_id}", json={"disabled": True}).status_code == 200
    deadline = time.monotonic() + 1.0
    while True:
        response = post(
            gw.token_url,
            data={"grant_type": JWT_BEARER, "assertion": client_jwt(other.access_key, gw.public_url)},
        )
        if response.status_code == 400:
            assert_oauth_error(response, 400, "invalid_grant")
            break
        assert time.monotonic() < deadline, "a disabled client still gets tokens after 1 s"
        time.sleep(0.05)


@pytest.mark.parametrize("audience", ["account", "public_url"])
def test_jwt_bearer_accepts_both_audiences(gw: Gateway, audience: str) -> None:
    svc: Svc = new_client(gw, secret=False, access_key=True)
    if audience == "public_url":
        assertion = client_jwt(svc.access_key, gw.public_url, aud=gw.public_url)
    else:  # the account's Authress audience, what the SDKs put in
        assertion = client_jwt(svc.access_key, gw.public_url)
    assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}))


def test_jwt_bearer_jti_is_single_use_when_present(gw: Gateway) -> None:
    svc = new_client(gw, secret=False, access_key=True)
    with_jti = client_jwt(svc.access_key, gw.public_url, jti=uuid.uuid4().hex)
    assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": with_jti}))
    before = gw.tokens_issued()
    assert_oauth_error(
        post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": with_jti}), 400, "invalid_grant"
    )
    assert_oauth_error(
        post(gw.token_url, data={"grant_type": JWT_BEARER}, headers={"Authorization": f"Bearer {with_jti}"}),
        400,
        "invalid_grant",
    )
    assert gw.tokens_issued() == before
    # Without a jti, the SDKs' cached token may be presented again (contract §3: jti optional).
    without = client_jwt(svc.access_key, gw.public_url)
    assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": without}))
    assert_issued(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": without}))
