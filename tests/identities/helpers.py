"""Shortcuts of the trusted-identity suite: entries, grants and calls."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.processes import http_client

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def trust(
    admin: Api, client_id: str, issuer: str, audience: str, conditions: dict[str, str], **more: Any
) -> dict[str, Any]:
    response = admin.post(
        "/v1/identities",
        json={
            "issuer": issuer,
            "audience": audience,
            "conditions": conditions,
            "clientId": client_id,
            **more,
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def grant(admin: Api, client_id: str, action: str, resource: str) -> None:
    role = unique("role")
    response = admin.put(
        f"/v1/roles/{role}", json={"name": role, "permissions": [{"action": action, "allow": True}]}
    )
    assert response.status_code in (200, 201), response.text
    response = admin.post(
        "/v1/records",
        json={
            "name": role,
            "users": [{"userId": client_id}],
            "statements": [{"roles": [role], "resources": [{"resourceUri": resource}]}],
        },
    )
    assert response.status_code == 201, response.text


def proxy(
    gw: Gateway, path: str, token: str | None, http: httpx.Client | None = None, **headers: str
) -> httpx.Response:
    sent = {**({"Authorization": f"Bearer {token}"} if token is not None else {}), **headers}
    if http is not None:
        return http.get(gw.public_url + path, headers=sent)
    with http_client() as client:
        return client.get(gw.public_url + path, headers=sent)


def exchange(gw: Gateway, subject_token: str, **params: str) -> httpx.Response:
    with http_client() as client:
        return client.post(
            gw.token_url,
            data={
                "grant_type": EXCHANGE,
                "subject_token": subject_token,
                "subject_token_type": JWT_TYPE,
                **params,
            },
        )


def within(seconds: float, check: Any, what: str) -> Any:
    """Poll `check()` until it returns something truthy, for at most `seconds` (changes reach
    every worker within 1 s, by contract); its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds}s"
        time.sleep(0.05)
