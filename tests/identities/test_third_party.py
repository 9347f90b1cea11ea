"""Software no one here wrote, on loopback: panva's node `oidc-provider` as a second issuer
(RFC 9068 JWT access tokens from its client_credentials grant), and the Authress node SDK calling
the admin API with a trusted external token through its token-provider function."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.identities.helpers import exchange, grant, proxy, trust, unique, within
from tests.identity.proxying import after_deadline_every_request, assert_invalid_token
from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.issuer import Issuer
from tests.support.node import require_node, script
from tests.support.processes import clean_env, http_client, read_line, stop_process

AUDIENCE = "https://gateway.example/api"


@pytest.fixture(scope="module")
def provider() -> Iterator[dict[str, Any]]:
    node = require_node("oidc-provider")
    proc = subprocess.Popen(
        [node, str(script("oidc_provider.mjs")), "ci-runner", "runner-secret", AUDIENCE],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
        start_new_session=True,
    )
    try:
        yield json.loads(read_line(proc, 20.0))
    finally:
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def provider_token(provider: dict[str, Any]) -> str:
    with http_client() as http:
        response = http.post(
            provider["token_endpoint"],
            data={"grant_type": "client_credentials", "resource": AUDIENCE, "scope": "deploy"},
            auth=("ci-runner", "runner-secret"),
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_oidc_provider_tokens_pass_then_stop_when_the_entry_changes(gw: Gateway, admin: Api, provider: dict[str, Any]) -> None:
    client = admin.create_client(unique("op"), scopes=["deploy"])["clientId"]
    entry = trust(admin, client, provider["issuer"], AUDIENCE, {"sub": "ci-runner"})
    token = provider_token(provider)
    response = within(1.5, lambda: (r := proxy(gw, "/whoami", token)).status_code == 200 and r, "trust")
    headers = {k.lower(): v for k, v in response.json()["headers"]}
    assert headers["x-gateway-auth-method"] == "oidc" and headers["x-gateway-subject"] == "ci-runner"
    assert headers["x-gateway-client-id"] == client
    exchanged = exchange(gw, token)
    assert exchanged.status_code == 200, exchanged.text
    # The entry now trusts another subject of that provider: this one is refused everywhere.
    changed = admin.put(f"/v1/identities/{entry['identityId']}",
                        json={"issuer": provider["issuer"], "audience": AUDIENCE, "clientId": client,
                              "conditions": {"sub": "another-runner"}})
    assert changed.status_code == 200, changed.text
    after_deadline_every_request(gw, "/whoami", [token, exchanged.json()["access_token"]], time.monotonic(),
                                 assert_invalid_token, requests_each=4)


def test_authress_node_sdk_with_an_external_token(gw: Gateway, admin: Api, issuer: Issuer) -> None:
    node = require_node("@authress/sdk")
    client = admin.create_client(unique("ci-admin"))["clientId"]
    repository = f"acme/{unique('infra')}"
    trust(admin, client, issuer.url, "https://gw.example", {"sub": f"repo:{repository}:ref:refs/heads/main"},
          preset="github-actions")
    grant(admin, client, "gateway:clients:*", "/gateway/clients")
    token = issuer.github("https://gw.example", repository=repository)
    within(1.5, lambda: gw.admin(token).get("/v1/clients").status_code == 200, "the grant")
    name = unique("made-by-ci")
    run = subprocess.run([node, str(script("authress_admin_call.mjs")), gw.admin_url, token, name],
                         capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert "error" not in answer, answer
    assert answer["read"] == name and answer["created"].startswith("sc_") and answer["listed"]
    # Another repository's token gets nothing from the SDK but the refusal.
    other = issuer.github("https://gw.example", repository="acme/not-trusted")
    refused = subprocess.run([node, str(script("authress_admin_call.mjs")), gw.admin_url, other, name],
                             capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert json.loads(refused.stdout.strip().splitlines()[-1]).get("status") == 401, refused.stdout
