"""The CLI and API completeness of issue 14 item 4, against the shared gateway's store: every
command run as a user runs it (`gateway … --config`), checked through the admin API and the
proxy."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from tests.identity.proxying import call
from tests.support.harness import Gateway
from tests.support.processes import clean_env, gateway_command, http_client


def test_expiring_keys_and_secrets_from_the_cli(gw: Gateway) -> None:
    client_id = gw.admin().create_client()["clientId"]
    key = gw.run_json("keys", "create", "--client", client_id, "--expires-in", "8s")
    assert key["expiresAt"] is not None
    secret = gw.run_json("secrets", "create", "--client", client_id, "--expires-at", "2030-01-01T00:00:00Z")
    assert secret["expiresAt"] == "2030-01-01T00:00:00.000Z"
    with http_client() as http:
        assert call(http, gw, "/whoami", key["accessKey"]).status_code == 200
    expires = datetime.fromisoformat(key["expiresAt"]).timestamp()
    time.sleep(max(0.0, expires - time.time() + 0.1))
    listed = gw.run_json("keys", "list", "--client", client_id)["accessKeys"]
    assert [k["expired"] for k in listed] == [True]
    assert "expired" in gw.run("keys", "list", "--client", client_id).stdout
    with http_client() as http:
        assert call(http, gw, "/whoami", key["accessKey"]).status_code == 401
    secrets = gw.run_json("secrets", "list", "--client", client_id)["secrets"]
    assert [(s["secretId"], s["expired"]) for s in secrets] == [(secret["secretId"], False)]
    assert "clientSecret" not in secrets[0]
    bad = gw.run("keys", "create", "--client", client_id, "--expires-in", "soon", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"] == "invalid_request"


def test_clients_show_update_disable_enable_and_usage(gw: Gateway) -> None:
    client_id, key = gw.admin().new_client_with_key()
    updated = gw.run_json(
        "clients", "update", client_id, "--rate-limit", "2/1m", "--burst", "2", "--scope", "a.b"
    )
    assert updated["rateLimit"] == {"requests": 2, "window": 60, "burst": 2}
    assert updated["scopes"] == ["a.b"]
    shown = gw.run_json("clients", "show", client_id)
    assert shown["rateLimit"]["requests"] == 2 and len(shown["verificationKeys"]) == 1
    assert "rate limit  2/60s (burst 2)" in gw.run("clients", "show", client_id).stdout
    time.sleep(1.0)
    with http_client() as http:
        assert [call(http, gw, "/whoami", key).status_code for _ in range(3)] == [200, 200, 429]
    gw.run_json("clients", "update", client_id, "--rate-limit", "none")
    gw.run_json("clients", "disable", client_id)
    assert gw.admin().get(f"/v1/clients/{client_id}").json()["disabled"] is True
    time.sleep(1.0)
    with http_client() as http:
        assert call(http, gw, "/whoami", key).status_code == 401
    gw.run_json("clients", "enable", client_id)
    time.sleep(1.0)
    with http_client() as http:
        assert call(http, gw, "/whoami", key).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        usage = gw.run_json("clients", "usage", client_id)["usage"]
        totals = (sum(r["allowed"] for r in usage), sum(r["refused"] for r in usage))
        if totals == (3, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert totals == (3, 1), usage
    nothing = gw.run("clients", "update", client_id)
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr


def test_public_keys_and_audit(gw: Gateway, tmp_path: object) -> None:
    from pathlib import Path

    client_id = gw.admin().create_client()["clientId"]
    pem = Path(str(tmp_path)) / "public.pem"
    pem.write_bytes(
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    added = gw.run_json("public-keys", "add", "--client", client_id, "--pem-file", str(pem))
    assert added["alg"] == "ES256"
    listed = gw.run_json("public-keys", "list", "--client", client_id)["publicKeys"]
    assert [k["keyId"] for k in listed] == [added["keyId"]]
    gw.run_json("public-keys", "revoke", "--client", client_id, added["keyId"])
    assert gw.run_json("public-keys", "list", "--client", client_id)["publicKeys"] == []
    entries = gw.run_json("audit", "--limit", "5")["audit"]
    assert entries[0]["action"] == "public_key.revoke" and entries[0]["actor"] == "cli"
    assert entries[0]["target"].endswith(added["keyId"])


def test_records_put_validates_like_the_api(gw: Gateway) -> None:
    client_id = gw.admin().create_client()["clientId"]
    role = gw.admin().create_role(["documents:read"])
    unknown = gw.run(
        "records", "put", "--user", client_id, "--role", "no-such-role", "--resource", "/x", "--json"
    )
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == {
        "error": "invalid_request",
        "message": "statements[0].roles: no role no-such-role",
    }
    relative = gw.run("records", "put", "--user", client_id, "--role", role, "--resource", "users/1")
    assert relative.returncode == 1 and "must start with /" in relative.stderr
    api = gw.admin().post(
        "/v1/records",
        json={
            "name": "r",
            "users": [{"userId": client_id}],
            "statements": [{"roles": [role], "resources": [{"resourceUri": "users/1"}]}],
        },
    )
    assert api.status_code == 400 and "must start with /" in api.json()["error_description"]
    assert gw.run_json("records", "put", "--user", client_id, "--role", role, "--resource", "/users/1")[
        "users"
    ]


def test_json_errors_closed_pipes_and_completion(gw: Gateway) -> None:
    missing = gw.run("clients", "show", "sc_" + "x" * 22, "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"] == "not_found"
    config_error = gw.run("clients", "list", "--json", "--config", "/nonexistent/config.yaml")
    assert config_error.returncode == 2 and json.loads(config_error.stdout)["error"] == "config_error"
    for _ in range(3):
        gw.admin().create_client()
    piped = subprocess.run(
        [
            "bash",
            "-c",
            " ".join(
                [*gateway_command("clients", "list", "--json"), "--config", str(gw.config_path), "| head -1"]
            ),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert piped.stdout.strip() == "{" and "Traceback" not in piped.stderr, piped.stderr
    completion = gw.run("completion", "bash")
    assert "complete -o default -F _gateway_complete gateway" in completion.stdout
    assert "--rate-limit" in completion.stdout and "public-keys" in completion.stdout


def test_client_search_by_name_prefix_and_tenant(gw: Gateway) -> None:
    admin = gw.admin()
    stem = uuid.uuid4().hex[:8]
    tenant = f"t{stem}"
    made = [
        admin.create_client(f"{stem}-billing")["clientId"],
        admin.create_client(f"{stem}-bill%", tenant=tenant)["clientId"],
        admin.create_client(f"{stem}-search")["clientId"],
    ]

    def names(**params: str) -> list[str]:
        response = admin.get("/v1/clients", params={"limit": "100", **params})
        assert response.status_code == 200, response.text
        return [c["clientId"] for c in response.json()["clients"]]

    assert names(name=f"{stem}-bill") == sorted(made[:2])
    assert names(name=f"{stem}-bill%") == [made[1]]  # no wildcards: % is a character
    assert names(name=f"{stem}-b_ll") == []
    assert names(tenant=tenant) == [made[1]]
    assert names(name=f"{stem}-s", tenant=tenant) == []
