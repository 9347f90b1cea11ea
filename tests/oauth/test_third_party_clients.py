"""Real third-party clients against the token server (issue 4, "How it is checked"): Authlib's
httpx OAuth2 client fetches tokens with client_secret_basic / client_secret_post and with
private_key_jwt (RSA and EC keys registered as JWKs, an Ed25519 key registered as PEM); the
tokens work at the proxy and reach the upstream as a gateway_jwt identity. PyJWT's PyJWKClient
verifies the issued tokens against the published JWKS; the discovery documents name every
endpoint (contract §3)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401  (installs an "always" filter of its own when imported)
import jwt
import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

with warnings.catch_warnings():
    # Authlib announces that its httpx integration moves to httpx2; it still is the httpx client.
    warnings.simplefilter("ignore")
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]
    from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]

from tests.oauth.conftest import Svc, new_client
from tests.oauth.deployment import API_AUDIENCE
from tests.oauth.helpers import KeyPair, assert_issued, basic, ec_key, ed25519_key, post, proxy_get, rsa_key
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import Upstream, http_client, new_mark

TOKEN_CLAIMS = ("iss", "sub", "client_id", "aud", "scope", "iat", "exp", "jti")


def jwks_client(gw: Gateway, path: str = "/.well-known/jwks.json") -> jwt.PyJWKClient:
    return jwt.PyJWKClient(gw.proxy_url + path, cache_jwk_set=False, timeout=10)


def verify(gw: Gateway, token: str, audience: str | None = None) -> dict[str, Any]:
    """Verify a gateway token the way a resource server would: PyJWKClient + jwt.decode."""
    key = jwks_client(gw).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA", "ES256", "RS256"],
        audience=audience or gw.public_url,
        issuer=gw.public_url,
        options={"require": list(TOKEN_CLAIMS)},
    )
    return claims


def authlib_secret_client(svc: Svc, method: str) -> OAuth2Client:
    return OAuth2Client(
        svc.client_id, svc.secret, token_endpoint_auth_method=method, trust_env=False, timeout=10
    )


def authlib_key_client(gw: Gateway, svc: Svc, key: Any, alg: str, **jwt_auth: Any) -> OAuth2Client:
    client = OAuth2Client(
        svc.client_id, key, token_endpoint_auth_method="private_key_jwt", trust_env=False, timeout=10
    )
    client.register_client_auth_method(PrivateKeyJWT(gw.token_url, alg=alg, **jwt_auth))
    return client


def assert_reaches_upstream_as_gateway_jwt(
    gw: Gateway, upstream: Upstream, token: str, svc: Svc, scopes: str
) -> None:
    mark = new_mark()
    response = proxy_get(gw, "/things", token, mark)
    assert response.status_code == 200, response.text
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-auth-method") == ["gateway_jwt"]
    assert headers_named(record, "x-gateway-client-id") == [svc.client_id]
    assert headers_named(record, "x-gateway-subject") == [svc.client_id]
    assert headers_named(record, "x-gateway-route") == ["read-things"]
    assert sorted(headers_named(record, "x-gateway-scopes")[0].split()) == sorted(scopes.split())
    assert headers_named(record, "authorization") == []  # not forwarded unless the upstream asks for it
    [identity] = headers_named(record, "x-gateway-identity")
    key = jwks_client(gw).get_signing_key_from_jwt(identity)
    claims = jwt.decode(identity, key.key, algorithms=["EdDSA", "ES256", "RS256"], audience="api")
    assert jwt.get_unverified_header(identity)["typ"] == "gateway-identity+jwt"
    assert claims["sub"] == claims["client_id"] == svc.client_id
    assert claims["route"] == "read-things" and claims["method"] == "GET" and claims["path"] == "/things"
    assert claims["exp"] - time.time() <= 61


# --- Authlib: client secrets -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_secret(gw: Gateway, upstream: Upstream, method: str) -> None:
    svc = new_client(gw)
    with authlib_secret_client(svc, method) as client:
        token = client.fetch_token(gw.token_url, grant_type="client_credentials", scope="things.read")
    assert token["token_type"] == "Bearer" and token["scope"] == "things.read"
    assert "refresh_token" not in token
    assert_reaches_upstream_as_gateway_jwt(gw, upstream, token["access_token"], svc, "things.read")

    # The token carries only the scope asked for: a route needing things.write refuses it.
    with http_client(fresh=True) as h:
        response = h.post(
            gw.proxy_url + "/things", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "insufficient_scope"


def test_authlib_wrong_secret_is_an_oauth_error(gw: Gateway) -> None:
    svc = new_client(gw)
    svc.secret = svc.secret[:-8] + "AAAAAAAA"
    with authlib_secret_client(svc, "client_secret_basic") as client, pytest.raises(OAuthError) as raised:
        client.fetch_token(gw.token_url, grant_type="client_credentials")
    assert raised.value.error == "invalid_client"


def test_authlib_audience_and_scope_reach_a_route_that_needs_both(gw: Gateway, upstream: Upstream) -> None:
    svc = new_client(gw)
    with authlib_secret_client(svc, "client_secret_basic") as client:
        token = client.fetch_token(
            gw.token_url, grant_type="client_credentials", scope="things.write", audience=API_AUDIENCE
        )
    assert verify(gw, token["access_token"], audience=API_AUDIENCE)["aud"] == API_AUDIENCE
    mark = new_mark()
    with http_client(fresh=True) as h:
        response = h.post(
            gw.proxy_url + "/things",
            headers={"Authorization": f"Bearer {token['access_token']}", "x-test-mark": mark},
        )
    assert response.status_code == 200, response.text
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-route") == ["write-things"]

    # The same client's token for the default audience (public_url) does not pass that route.
    with authlib_secret_client(svc, "client_secret_basic") as client:
        plain = client.fetch_token(gw.token_url, grant_type="client_credentials", scope="things.write")
    with http_client(fresh=True) as h:
        response = h.post(
            gw.proxy_url + "/things", headers={"Authorization": f"Bearer {plain['access_token']}"}
        )
    assert response.status_code == 403, response.text


# --- Authlib: private_key_jwt ----------------------------------------------------------------


def _register(gw: Gateway, svc: Svc, kind: str) -> tuple[KeyPair, Any, str]:
    """A key pair of `kind`, its public half registered for the client; returns the pair, the
    private key as Authlib takes it, and the registered key id."""
    if kind == "rsa-jwk":
        pair = rsa_key()
        registered = gw.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())
        private: Any = RSAKey.import_key(pair.private_pem())
    elif kind == "ec-jwk":
        pair = ec_key()
        registered = gw.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())
        private = ECKey.import_key(pair.private_pem())
    else:
        pair = ed25519_key()
        registered = gw.admin().add_public_key(svc.client_id, pem=pair.public_pem())
        private = OKPKey.import_key(pair.private_pem())
    assert registered["alg"] == pair.alg
    assert registered["clientId"] == svc.client_id
    assert "d" not in registered["jwk"]
    return pair, private, registered["keyId"]


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # joserfc prefers RFC 9864's "Ed25519"
@pytest.mark.parametrize("kind", ["rsa-jwk", "ec-jwk", "ed25519-pem"])
@pytest.mark.parametrize("with_kid", [False, True])
def test_authlib_private_key_jwt(gw: Gateway, upstream: Upstream, kind: str, with_kid: bool) -> None:
    svc = new_client(gw, secret=False)
    pair, private, key_id = _register(gw, svc, kind)
    # A five-minute assertion, well within tokens.assertion_max_lifetime. (Authlib's own
    # default, one hour, is the subject of the test below.)
    exp = int(time.time()) + 300
    extra: dict[str, Any] = {"claims": {"exp": exp}}
    if with_kid:
        extra["headers"] = {"kid": key_id}
    with authlib_key_client(gw, svc, private, pair.alg, **extra) as client:
        token = client.fetch_token(gw.token_url, grant_type="client_credentials", scope="things.read")
    assert token["scope"] == "things.read"
    claims = verify(gw, token["access_token"])
    assert claims["sub"] == svc.client_id
    assert_reaches_upstream_as_gateway_jwt(gw, upstream, token["access_token"], svc, "things.read")


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_authlib_private_key_jwt_with_its_default_assertion_lifetime(gw: Gateway) -> None:
    """Authlib signs private_key_jwt assertions valid for one hour (exp = iat + 3600) unless told
    otherwise, as most client libraries do (Okta's limit is the same hour). A gateway on its
    default settings has to take what the client named in the issue sends by default."""
    svc = new_client(gw, secret=False)
    pair, private, _ = _register(gw, svc, "rsa-jwk")
    with authlib_key_client(gw, svc, private, pair.alg) as client:
        token = client.fetch_token(gw.token_url, grant_type="client_credentials")
    assert verify(gw, token["access_token"])["sub"] == svc.client_id


def test_authlib_private_key_jwt_with_an_unregistered_key(gw: Gateway) -> None:
    svc = new_client(gw, secret=False)
    _register(gw, svc, "ec-jwk")
    stranger = ec_key()
    with (
        authlib_key_client(
            gw, svc, ECKey.import_key(stranger.private_pem()), "ES256", claims={"exp": int(time.time()) + 300}
        ) as client,
        pytest.raises(OAuthError) as raised,
    ):
        client.fetch_token(gw.token_url, grant_type="client_credentials")
    assert raised.value.error == "invalid_client"


# --- PyJWT's PyJWKClient ---------------------------------------------------------------------


def _secret_token(gw: Gateway, svc: Svc, **form: str) -> dict[str, Any]:
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials", **form},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    )
    return assert_issued(response)


def test_pyjwkclient_verifies_issued_tokens(gw: Gateway) -> None:
    svc = new_client(gw)
    issued = _secret_token(gw, svc)
    token = issued["access_token"]
    head = jwt.get_unverified_header(token)
    assert head["typ"] == "at+jwt"
    assert head["alg"] == "EdDSA"  # the default algorithm
    with http_client() as h:
        jwks = h.get(gw.proxy_url + "/.well-known/jwks.json").json()
    assert head["kid"] in [k["kid"] for k in jwks["keys"]]

    claims = verify(gw, token)
    assert claims["iss"] == gw.public_url
    assert claims["sub"] == claims["client_id"] == svc.client_id
    assert claims["aud"] == gw.public_url  # no audience asked for
    assert sorted(claims["scope"].split()) == sorted(svc.scopes)  # no scope asked for: all allowed
    assert claims["scope"] == issued["scope"]
    assert claims["exp"] - claims["iat"] == 3600 == issued["expires_in"]  # the default lifetime
    assert abs(claims["iat"] - time.time()) < 30
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert "tenant" not in claims

    # Every token has a jti of its own.
    assert verify(gw, _secret_token(gw, svc)["access_token"])["jti"] != claims["jti"]

    # A tampered token does not verify.
    header_part, payload_part, signature = token.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload_part).replace(svc.client_id.encode(), b"sc_" + b"X" * 22)
    ).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(gw, f"{header_part}.{tampered_payload}.{signature}")


def test_the_jwks_alias_serves_the_same_keys(gw: Gateway) -> None:
    svc = new_client(gw)
    token = _secret_token(gw, svc)["access_token"]
    with http_client() as h:
        main = h.get(gw.proxy_url + "/.well-known/jwks.json")
        alias = h.get(gw.proxy_url + "/.well-known/openid-configuration/jwks")
    assert main.status_code == alias.status_code == 200
    assert main.json() == alias.json()
    assert "max-age=" in main.headers.get("cache-control", ""), main.headers
    for key in main.json()["keys"]:
        assert {"kty", "kid", "alg"} <= set(key), key
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key), "a private part is published"
    key = jwks_client(gw, "/.well-known/openid-configuration/jwks").get_signing_key_from_jwt(token)
    assert jwt.decode(token, key.key, algorithms=["EdDSA"], audience=gw.public_url)["sub"] == svc.client_id


def test_tenant_claim_when_the_client_has_one(gw: Gateway, upstream: Upstream) -> None:
    svc = new_client(gw, tenant="tenant42")
    token = _secret_token(gw, svc, scope="things.read")["access_token"]
    assert verify(gw, token)["tenant"] == "tenant42"
    mark = new_mark()
    assert proxy_get(gw, "/things", token, mark).status_code == 200
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-tenant") == ["tenant42"]


def test_per_client_token_lifetime(gw: Gateway) -> None:
    svc = new_client(gw, tokenLifetime=120)
    issued = _secret_token(gw, svc)
    claims = verify(gw, issued["access_token"])
    assert issued["expires_in"] == 120 == claims["exp"] - claims["iat"]

    # Changing the client's lifetime changes the tokens issued from then on (every worker
    # follows a client change within 1 s).
    response = gw.admin().patch(f"/v1/clients/{svc.client_id}", json={"tokenLifetime": 900})
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 1.0
    while (issued := _secret_token(gw, svc))["expires_in"] == 120:
        assert time.monotonic() < deadline, "the new tokenLifetime is not used 1 s after the change"
        time.sleep(0.05)
    claims = verify(gw, issued["access_token"])
    assert issued["expires_in"] == 900 == claims["exp"] - claims["iat"]


# --- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
def test_discovery_document(gw: Gateway, path: str) -> None:
    with http_client() as h:
        response = h.get(gw.proxy_url + path)
    assert response.status_code == 200, response.text
    doc = response.json()
    issuer = gw.public_url
    assert doc["issuer"] == issuer
    assert doc["token_endpoint"] == f"{issuer}/oauth/token"
    assert doc["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert doc["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert doc["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert {"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"} <= set(
        doc["grant_types_supported"]
    )
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert "none" not in doc["token_endpoint_auth_methods_supported"]

    # What the document names works: the JWKS verifies a token from the token endpoint.
    svc = new_client(gw)
    token = post(
        doc["token_endpoint"],
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    ).json()["access_token"]
    key = jwt.PyJWKClient(doc["jwks_uri"], cache_jwk_set=False).get_signing_key_from_jwt(token)
    assert jwt.decode(token, key.key, algorithms=["EdDSA"], audience=issuer)["iss"] == issuer
