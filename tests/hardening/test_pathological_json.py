"""Defect 2: pathological JSON inside a credential (or a request body) is a 4xx, never a 500.

A JWT-shaped credential whose header or payload is JSON nested thousands of levels deep once
raised RecursionError in the segment parser, on the proxy and at /oauth/token. Depth, size, huge
numbers, non-finite numbers and duplicate members are all refused the ordinary way.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.identity.proxying import assert_invalid_token, bearer
from tests.oauth.helpers import ASSERTION_TYPE, JWT_BEARER
from tests.support.checks import error_body
from tests.support.harness import Gateway
from tests.support.processes import http_client


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _claims(gw: Gateway, client_id: str) -> str:
    return json.dumps(
        {
            "iss": f"{gw.public_url}/v1/clients/{client_id}",
            "sub": client_id,
            "aud": gw.public_url,
            "iat": 1_700_000_000,
            "exp": 1_700_000_600,
            "jti": "j1",
        }
    )


HEADER = '{"alg":"EdDSA","kid":"acc_AAAAAAAAAAAAAAAAAAAAAA"}'
DEEP = "[" * 5000 + "]" * 5000
BAD_JSON = {
    "deep_array": lambda doc: doc[:-1] + ',"x":' + DEEP + "}",
    "deep_object": lambda doc: doc[:-1] + ',"x":' + '{"":' * 1500 + "1" + "}" * 1500 + "}",
    "huge_integer": lambda doc: doc[:-1] + ',"x":' + "9" * 5000 + "}",
    "infinite_float": lambda doc: doc[:-1] + ',"x":1e999}',
    "nan": lambda doc: doc[:-1] + ',"x":NaN}',
    "duplicate_member": lambda doc: doc[:-1] + ',"sub":"someone-else"}',
}


def _credentials(gw: Gateway, client_id: str) -> list[tuple[str, str]]:
    """(case, JWT-shaped text) with the pathology in the header, then in the payload."""
    out = []
    claims = _claims(gw, client_id)
    for name, spoil in BAD_JSON.items():
        out.append((f"header-{name}", f"{_b64(spoil(HEADER))}.{_b64(claims)}.c2ln"))
        out.append((f"payload-{name}", f"{_b64(HEADER)}.{_b64(spoil(claims))}.c2ln"))
    return out


def test_at_the_proxy_each_is_a_401(gateway: Gateway) -> None:
    client_id, _ = gateway.admin().new_client_with_key()
    with http_client() as http:
        for case, credential in _credentials(gateway, client_id):
            response = http.get(gateway.public_url + "/whoami", headers=bearer(credential))
            assert response.status_code == 401, (case, response.status_code, response.text)
            assert_invalid_token(response)


def test_at_the_token_endpoint_each_is_invalid_client_or_invalid_grant(gateway: Gateway) -> None:
    client_id, _ = gateway.admin().new_client_with_key()
    with http_client() as http:
        for case, credential in _credentials(gateway, client_id):
            response = http.post(
                gateway.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": credential,
                },
            )
            assert response.status_code == 401, (case, response.text)
            assert response.json()["error"] == "invalid_client", (case, response.text)
            response = http.post(gateway.token_url, data={"grant_type": JWT_BEARER, "assertion": credential})
            assert response.status_code == 400, (case, response.text)
            assert response.json()["error"] == "invalid_grant", (case, response.text)


@pytest.mark.parametrize("body", [DEEP, '{"a":' * 3000 + "1" + "}" * 3000, '{"name":"a","name":"b"}'])
def test_json_bodies_are_a_400(gateway: Gateway, body: str) -> None:
    headers = {"content-type": "application/json"}
    with http_client() as http:
        response = http.post(gateway.token_url, content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
    response = gateway.admin().post("/v1/clients", content=body, headers=headers)
    error_body(response, 400, "invalid_request")
