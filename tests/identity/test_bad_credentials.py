"""Bad credentials of every shape, at the proxy and at the admin API: each a 401 with the
contract's body and challenge, the upstream never reached, never a 500. The same tokens with only
the fault removed pass (so each case fails for the fault it carries, not by accident)."""

from __future__ import annotations

import base64
import json
import random
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.identity.keys import (
    Key,
    b64url,
    b64url_json,
    client_claims,
    client_jwt,
    flip_signature,
    fresh_ed25519_b64,
    rsa_pkcs8_b64,
    sign_ed25519,
    sign_hs256,
    unsigned,
    x25519_pkcs8_b64,
)
from tests.identity.proxying import assert_invalid_token, bearer
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream, http_client


@dataclass
class Setup:
    gw: Gateway
    recorder: Upstream
    a: Key  # client A's active key (A may read the documents below)
    a2: Key  # client A's revoked key
    b: Key  # client B's active key (B may read them too)
    path: str
    identity_token: str  # an X-Gateway-Identity the upstream received
    attacker: Ed25519PrivateKey


@pytest.fixture(scope="module")
def setup(gw_sqlite: Gateway, recorder: Upstream) -> Setup:
    gw = gw_sqlite
    admin = gw.admin(keep_alive=True)
    try:
        a_id = admin.create_client()["clientId"]
        a = Key.parse(admin.create_key(a_id)["accessKey"])
        a2 = Key.parse(admin.create_key(a_id)["accessKey"])
        b_id = admin.create_client()["clientId"]
        b = Key.parse(admin.create_key(b_id)["accessKey"])
        user = str(random.randrange(10**9, 10**10))
        path = f"/v1/users/{user}/documents/1"
        role = admin.create_role(["documents:read"])
        admin.create_record([a_id, b_id], [role], [f"/users/{user}"])
        assert admin.delete(f"/v1/clients/{a_id}/access-keys/{a2.key_id}").status_code == 204
        mark = uuid.uuid4().hex
        with http_client() as http:
            deadline = time.monotonic() + 2.0
            while http.get(gw.public_url + path, headers={**bearer(a.text), MARK: mark}).status_code != 200:
                assert time.monotonic() < deadline, "the grant did not take effect"
                time.sleep(0.05)
        (identity,) = headers_named(recorder.marked(mark)[0], "x-gateway-identity")
    finally:
        admin.close()
    return Setup(gw, recorder, a, a2, b, path, identity, Ed25519PrivateKey.generate())


def _random_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))


def _with_raw_claims(s: Setup, raw: str) -> str:
    """A client JWT, properly signed with A's key, whose claims are the raw JSON given."""
    return sign_ed25519(s.a.private, {"alg": "EdDSA", "kid": s.a.key_id, "typ": "JWT"}, raw.encode())


def _claims_text(s: Setup, **replace: str) -> str:
    """A's claims as JSON text, with some values replaced by raw JSON snippets."""
    claims = client_claims(s.a, s.gw.public_url)
    parts = [f'"{k}":{replace.pop(k) if k in replace else json.dumps(v)}' for k, v in claims.items()]
    parts += [f'"{k}":{v}' for k, v in replace.items()]
    return "{" + ",".join(parts) + "}"


def _attacker_jwk(s: Setup) -> dict[str, str]:
    raw = s.attacker.public_key().public_bytes_raw()
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": s.a.key_id}


def _pem_public(key: Key) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tampered_claims(s: Setup) -> str:
    head, _, sig = client_jwt(s.a, s.gw.public_url).split(".")
    other = b64url_json(client_claims(s.a, s.gw.public_url, exp=int(time.time()) + 7000))
    return f"{head}.{other}.{sig}"


def _now() -> int:
    # Read when a case is built, not at import: a long suite reaches these cases minutes later,
    # and "iat in the future" must still be in the future then.
    return int(time.time())


# name -> how to build the bad credential from the setup
BAD: dict[str, Callable[[Setup], str]] = {
    # --- static access keys: shape ---
    "three parts": lambda s: f"{s.a.client_id}.{s.a.key_id}.{s.a.account_id}",
    "five parts": lambda s: s.a.text + ".AAAA",
    "two parts": lambda s: f"{s.a.client_id}.{s.a.encoded}",
    "empty fourth part": lambda s: s.a.with_parts(encoded=""),
    "base64 non-alphabet": lambda s: s.a.with_parts(encoded=s.a.encoded[:40] + "!" + s.a.encoded[41:]),
    "base64 url alphabet": lambda s: s.a.with_parts(encoded=s.a.encoded[:40] + "-" + s.a.encoded[41:]),
    "base64 padding": lambda s: s.a.with_parts(encoded=s.a.encoded[:-1] + "="),
    "base64 extra padding": lambda s: s.a.with_parts(encoded=s.a.encoded + "=="),
    "x25519 key in the slot": lambda s: s.a.with_parts(encoded=x25519_pkcs8_b64()),
    "rsa key in the slot": lambda s: s.a.with_parts(encoded=rsa_pkcs8_b64()),
    "truncated der": lambda s: s.a.with_parts(encoded=base64.b64encode(s.a.der[:45]).decode()),
    "truncated base64": lambda s: s.a.with_parts(encoded=s.a.encoded[:60]),
    "der with trailing bytes": lambda s: s.a.with_parts(
        encoded=base64.b64encode(s.a.der + b"\0\0\0").decode()
    ),
    "malformed client id": lambda s: s.a.with_parts(client_id="sc_short"),
    # --- static access keys: content ---
    "another account": lambda s: s.a.with_parts(account_id="otheraccount"),
    "unknown key id": lambda s: s.a.with_parts(key_id=_random_id("acc_")),
    "unknown client id": lambda s: s.a.with_parts(client_id=_random_id("sc_")),
    "revoked key": lambda s: s.a2.text,
    "another client's key id": lambda s: s.b.with_parts(client_id=s.a.client_id),
    "another client's key id with own secret": lambda s: s.a.with_parts(key_id=s.b.key_id),
    "wrong private key": lambda s: s.a.with_parts(encoded=fresh_ed25519_b64()),
    "another client's private key": lambda s: s.a.with_parts(encoded=s.b.encoded),
    # --- client-signed JWTs ---
    "alg none": lambda s: unsigned(
        {"alg": "none", "kid": s.a.key_id, "typ": "JWT"}, client_claims(s.a, s.gw.public_url)
    ),
    "alg none with the real signature": lambda s: (
        b64url_json({"alg": "none", "kid": s.a.key_id})
        + "."
        + client_jwt(s.a, s.gw.public_url).split(".", 1)[1]
    ),
    "alg NONE": lambda s: unsigned({"alg": "NONE", "kid": s.a.key_id}, client_claims(s.a, s.gw.public_url)),
    "hs256 with raw public key": lambda s: sign_hs256(
        s.a.public_raw, {"alg": "HS256", "kid": s.a.key_id, "typ": "JWT"}, client_claims(s.a, s.gw.public_url)
    ),
    "hs256 with jwk x": lambda s: sign_hs256(
        b64url(s.a.public_raw).encode(),
        {"alg": "HS256", "kid": s.a.key_id},
        client_claims(s.a, s.gw.public_url),
    ),
    "hs256 with pem public key": lambda s: sign_hs256(
        _pem_public(s.a), {"alg": "HS256", "kid": s.a.key_id}, client_claims(s.a, s.gw.public_url)
    ),
    "rs256 header": lambda s: sign_ed25519(
        s.a.private, {"alg": "RS256", "kid": s.a.key_id}, client_claims(s.a, s.gw.public_url)
    ),
    "tampered signature": lambda s: flip_signature(client_jwt(s.a, s.gw.public_url)),
    "tampered claims": _tampered_claims,
    "signature stripped": lambda s: client_jwt(s.a, s.gw.public_url).rsplit(".", 1)[0] + ".",
    "expired": lambda s: client_jwt(s.a, s.gw.public_url, iat=_now() - 7200, exp=_now() - 3600),
    "expired beyond leeway": lambda s: client_jwt(
        s.a, s.gw.public_url, iat=_now() - 600, exp=int(time.time()) - 45
    ),
    "lifetime over 24 h": lambda s: client_jwt(s.a, s.gw.public_url, iat=_now(), exp=_now() + 86400 + 3600),
    "exp in the far future": lambda s: client_jwt(
        s.a, s.gw.public_url, iat=_now(), exp=_now() + 10 * 365 * 86400
    ),
    "iat in the future": lambda s: client_jwt(s.a, s.gw.public_url, iat=_now() + 600, exp=_now() + 1200),
    "nbf in the future": lambda s: client_jwt(s.a, s.gw.public_url, nbf=_now() + 600),
    "exp 1e400": lambda s: _with_raw_claims(s, _claims_text(s, exp="1e400")),
    "iat -1e400": lambda s: _with_raw_claims(s, _claims_text(s, iat="-1e400")),
    "exp NaN": lambda s: _with_raw_claims(s, _claims_text(s, exp="NaN")),
    "exp Infinity": lambda s: _with_raw_claims(s, _claims_text(s, exp="Infinity")),
    "exp as a string": lambda s: _with_raw_claims(s, _claims_text(s, exp=json.dumps(str(_now() + 3600)))),
    "iat as a bool": lambda s: _with_raw_claims(s, _claims_text(s, iat="true")),
    "exp missing": lambda s: client_jwt(s.a, s.gw.public_url, exp=None),
    "iat missing": lambda s: client_jwt(s.a, s.gw.public_url, iat=None),
    "kid of another client": lambda s: sign_ed25519(
        s.b.private, {"alg": "EdDSA", "kid": s.b.key_id}, client_claims(s.a, s.gw.public_url)
    ),
    "kid of another client, own signature": lambda s: client_jwt(
        s.a, s.gw.public_url, header={"kid": s.b.key_id}
    ),
    "kid of a revoked key": lambda s: client_jwt(s.a2, s.gw.public_url),
    "kid unknown": lambda s: client_jwt(s.a, s.gw.public_url, header={"kid": _random_id("acc_")}),
    "kid missing": lambda s: sign_ed25519(s.a.private, {"alg": "EdDSA"}, client_claims(s.a, s.gw.public_url)),
    "kid not a string": lambda s: client_jwt(s.a, s.gw.public_url, header={"kid": 7}),
    "crit header": lambda s: client_jwt(s.a, s.gw.public_url, header={"crit": ["exp"]}),
    "crit with unknown extension": lambda s: client_jwt(
        s.a, s.gw.public_url, header={"crit": ["urn:example:x"], "urn:example:x": True}
    ),
    "typ of the identity header": lambda s: client_jwt(
        s.a, s.gw.public_url, header={"typ": "gateway-identity+jwt"}
    ),
    "sub of another client": lambda s: client_jwt(s.a, s.gw.public_url, sub=s.b.client_id),
    "client_id of another client": lambda s: client_jwt(s.a, s.gw.public_url, client_id=s.b.client_id),
    "issuer of another client": lambda s: client_jwt(
        s.a,
        s.gw.public_url,
        iss=f"{s.gw.public_url}/v1/clients/{s.b.client_id}",
        sub=s.b.client_id,
        client_id=s.b.client_id,
    ),
    "audience of someone else": lambda s: client_jwt(s.a, s.gw.public_url, aud="other.accounts.authress.io"),
    "audience missing": lambda s: client_jwt(s.a, s.gw.public_url, aud=None),
    "issuer on another origin": lambda s: client_jwt(
        s.a, s.gw.public_url, iss=f"http://127.0.0.1:1/v1/clients/{s.a.client_id}"
    ),
    "issuer with an extra slash": lambda s: client_jwt(
        s.a, s.gw.public_url, iss=f"{s.gw.public_url}//v1/clients/{s.a.client_id}"
    ),
    "attacker key in jwk header": lambda s: sign_ed25519(
        s.attacker,
        {"alg": "EdDSA", "kid": s.a.key_id, "jwk": _attacker_jwk(s)},
        client_claims(s.a, s.gw.public_url),
    ),
    "attacker key behind jku and x5u": lambda s: sign_ed25519(
        s.attacker,
        {
            "alg": "EdDSA",
            "kid": s.a.key_id,
            "jku": f"{s.recorder.url}/jku-fetched/{s.a.key_id}",
            "x5u": f"{s.recorder.url}/x5u-fetched/{s.a.key_id}",
        },
        client_claims(s.a, s.gw.public_url),
    ),
    "gateway identity token": lambda s: s.identity_token,
    "garbage jwt": lambda s: "eyJhbGciOiJFZERTQSJ9.eyJ.AAAA",
    "not base64 jwt": lambda s: "eyJ!!!.eyJ!!!.!!!",
    # --- the Authorization header itself ---
    "opaque garbage": lambda s: "not-a-credential",
    "non-ascii": lambda s: "sc_\u00e9\u00e9\u00e9",
}

# Credentials sent with a scheme other than Bearer, or none at all.
RAW_AUTHORIZATION: dict[str, Callable[[Setup], str]] = {
    "basic scheme": lambda s: "Basic " + base64.b64encode(f"{s.a.client_id}:{s.a.text}".encode()).decode(),
    "scheme only": lambda s: "Bearer",
    "key without scheme": lambda s: s.a.text,
}


def _request(s: Setup, listener: str, authorization: str, mark: str) -> httpx.Response:
    headers = {"Authorization": authorization, MARK: mark}
    with http_client() as http:
        if listener == "proxy":
            return http.get(s.gw.public_url + s.path, headers=headers)
        return http.get(s.gw.admin_url + "/v1/clients", params={"limit": 1}, headers=headers)


def _refused(s: Setup, listener: str, authorization: str) -> httpx.Response:
    mark = uuid.uuid4().hex
    try:
        response = _request(s, listener, authorization, mark)
    except UnicodeEncodeError:
        # httpx will not send non-ASCII header values: send the raw bytes ourselves.
        response = _raw_request(s, listener, authorization.encode("utf-8"), mark)
    assert_invalid_token(response)
    assert s.recorder.marked(mark) == [], "a refused request reached the upstream"
    return response


def _raw_request(s: Setup, listener: str, authorization: bytes, mark: str) -> httpx.Response:
    import socket

    port = s.gw.port if listener == "proxy" else s.gw.admin_port
    target = s.path if listener == "proxy" else "/v1/clients?limit=1"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{MARK}: {mark}\r\nConnection: close\r\n".encode()
        + b"Authorization: Bearer "
        + authorization
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines[1:])]
    return httpx.Response(status, headers=headers, content=body)


@pytest.mark.parametrize("listener", ["proxy", "admin"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_bearer_credential(setup: Setup, case: str, listener: str) -> None:
    credential = BAD[case](setup)
    response = _refused(setup, listener, f"Bearer {credential}")
    description = response.json()["error_description"]
    for secret in (setup.a.encoded, setup.b.encoded):
        assert secret not in description and secret not in response.headers.get("www-authenticate", "")


@pytest.mark.parametrize("listener", ["proxy", "admin"])
@pytest.mark.parametrize("case", list(RAW_AUTHORIZATION))
def test_bad_authorization_header(setup: Setup, case: str, listener: str) -> None:
    _refused(setup, listener, RAW_AUTHORIZATION[case](setup))


def test_no_jku_or_x5u_is_ever_fetched(setup: Setup) -> None:
    """Run after the cases above in this module (and on its own): nothing fetched those URLs."""
    for listener in ("proxy", "admin"):
        _refused(setup, listener, "Bearer " + BAD["attacker key behind jku and x5u"](setup))
    assert setup.recorder.with_path_part("jku-fetched") == []
    assert setup.recorder.with_path_part("x5u-fetched") == []


@pytest.mark.parametrize(
    "variant",
    [
        "static key",
        "typ absent",
        "typ JWT",
        "typ at+jwt",
        "typ AT+JWT",
        "jku x5u jwk x5c headers",
        "admin issuer",
    ],
)
def test_the_same_credentials_without_a_fault_pass(setup: Setup, variant: str) -> None:
    """Controls: the valid forms the bad cases were derived from are accepted, so each bad case
    above is refused for its fault. Foreign key headers are ignored and the stored key decides."""
    s = setup
    headers: dict[str, Any] = {}
    base = s.gw.public_url
    if variant == "static key":
        credential = s.a.text
    else:
        if variant.startswith("typ"):
            typ = variant.removeprefix("typ ").strip()
            headers = {"typ": typ} if typ != "absent" else {}
        elif variant == "admin issuer":
            base = s.gw.admin_url
        else:
            headers = {
                "jku": f"{s.recorder.url}/jku-fetched/valid",
                "x5u": f"{s.recorder.url}/x5u-fetched/valid",
                "jwk": _attacker_jwk(s),
                "x5c": [base64.b64encode(b"not a certificate").decode()],
            }
        head = {"alg": "EdDSA", "kid": s.a.key_id, **headers}
        credential = sign_ed25519(s.a.private, head, client_claims(s.a, base))
    mark = uuid.uuid4().hex
    for listener in ("proxy", "admin"):
        response = _request(s, listener, f"Bearer {credential}", mark)
        if listener == "proxy":
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 403, response.text  # authenticated, no gateway grant
            assert response.json()["error"] == "access_denied"
    assert len(s.recorder.marked(mark)) == 1
    assert s.recorder.with_path_part("jku-fetched") == []
    assert s.recorder.with_path_part("x5u-fetched") == []


@pytest.mark.parametrize("listener", ["proxy", "admin"])
def test_huge_authorization_header_is_431(setup: Setup, listener: str) -> None:
    mark = uuid.uuid4().hex
    response = _request(setup, listener, "Bearer " + "A" * 20_000, mark)
    if listener == "proxy":
        assert response.status_code == 431, response.text
        body = response.json()
        assert set(body) == {"error", "error_description", "request_id"}
        assert body["error"] == "request_too_large"
        assert setup.recorder.marked(mark) == []
    else:
        assert response.status_code in (401, 431), response.text


@pytest.mark.parametrize("listener", ["proxy", "admin"])
def test_two_credentials_are_400(setup: Setup, listener: str) -> None:
    s = setup
    url = s.gw.public_url + s.path if listener == "proxy" else s.gw.admin_url + "/v1/clients"
    with http_client() as http:
        for twice in (
            [("Authorization", f"Bearer {s.a.text}"), ("Authorization", f"Bearer {s.a.text}")],
            [("Authorization", f"Bearer {s.a.text}"), ("authorization", f"Bearer {s.b.text}")],
        ):
            mark = uuid.uuid4().hex
            response = http.get(url, headers=[*twice, (MARK, mark)])
            assert response.status_code == 400, response.text
            body = response.json()
            assert body["error"] == "invalid_request" and set(body) == {
                "error",
                "error_description",
                "request_id",
            }
            assert s.recorder.marked(mark) == []
        mark = uuid.uuid4().hex
        response = http.get(url, params={"access_token": s.a.text}, headers={**bearer(s.a.text), MARK: mark})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert s.recorder.marked(mark) == []


def test_no_credential_is_401_without_error_attribute(setup: Setup) -> None:
    s = setup
    with http_client() as http:
        mark = uuid.uuid4().hex
        response = http.get(s.gw.public_url + s.path, headers={MARK: mark})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert "error=" not in response.headers["www-authenticate"]
    assert s.recorder.marked(mark) == []


def test_flood_of_unknown_key_ids_is_refused(setup: Setup) -> None:
    """Random key ids (negatively cached) never pass and never break the gateway."""
    s = setup
    with http_client() as http:
        for _ in range(40):
            response = http.get(
                s.gw.public_url + s.path, headers=bearer(s.a.with_parts(key_id=_random_id("acc_")))
            )
            assert response.status_code == 401, response.text
        assert http.get(s.gw.public_url + s.path, headers=bearer(s.a.text)).status_code == 200
