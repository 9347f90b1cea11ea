"""Entries from the config file (read-only everywhere, the shared gateway has one), and the
`gateway identities` commands over the whole path: trust, exchange, delete, refused. (The store's
part on PostgreSQL: tests/store/test_trusted_identities.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.runtime import configured_identities
from tests.identities.helpers import exchange, proxy, within
from tests.identity.proxying import after_deadline_every_request, assert_invalid_token
from tests.support.harness import Gateway
from tests.support.issuer import Issuer


def test_config_entry_works_and_is_read_only(gw: Gateway, issuer: Issuer) -> None:
    token = issuer.token({"sub": "config-workload", "aud": "config-aud"})
    assert proxy(gw, "/whoami", token).status_code == 200
    admin = gw.admin()
    shown = admin.get("/v1/identities/from-config")
    assert shown.status_code == 200 and shown.json()["source"] == "config"
    assert "from-config" in [e["identityId"] for e in admin.get("/v1/identities").json()["identities"]]
    assert admin.delete("/v1/identities/from-config").status_code == 409
    assert admin.put("/v1/identities/from-config", json={**shown.json(), "audience": "x"}).status_code == 409
    assert admin.post("/v1/identities", json={**shown.json(), "source": "api"}).status_code == 409
    refused = gw.run("identities", "delete", "from-config")
    assert refused.returncode == 1 and "config file" in refused.stderr



def test_cli_lifecycle(gw: Gateway, issuer: Issuer) -> None:
    client = gw.admin().create_client("cli-made", scopes=["deploy"])["clientId"]
    made = gw.run_json("identities", "create", "--client", client, "--preset", "kubernetes", "--issuer", issuer.url,
                          "--audience", "cli-aud", "--condition", "sub=system:serviceaccount:jobs:*")
    assert made["identityId"].startswith("tid_") and made["conditions"] == {"sub": "system:serviceaccount:jobs:*"}
    listed = gw.run_json("identities", "list")["identities"]
    assert {e["identityId"] for e in listed} >= {made["identityId"], "from-config"}

    token = issuer.kubernetes("cli-aud", "jobs", "nightly")
    assert within(1.5, lambda: proxy(gw, "/whoami", token).status_code == 200, "trust")
    exchanged = exchange(gw, token)
    assert exchanged.status_code == 200, exchanged.text
    deleted = gw.run("identities", "delete", made["identityId"])
    assert deleted.returncode == 0, deleted.stderr
    after_deadline_every_request(gw, "/whoami", [token, exchanged.json()["access_token"]], time.monotonic(),
                                 assert_invalid_token, requests_each=3)


def test_bad_config_entries_name_file_and_field(tmp_path: Path) -> None:
    base = {"public_url": "http://127.0.0.1:1", "listen": "127.0.0.1:1",
            "admin": {"listen": "127.0.0.1:2", "public_url": "http://127.0.0.1:2"},
            "store": "sqlite:///x.db", "account_id": "a", "master_key_file": "m", "policies": ["p"]}
    entry = {"identityId": "ci", "issuer": "https://token.actions.githubusercontent.com", "audience": "a",
             "clientId": "sc_" + "a" * 22, "conditions": {"sub": "repo:acme/x:ref:refs/heads/main"}}
    cases = [
        ({**entry, "conditions": {"repository_owner": "acme"}}, "identities[0].conditions:"),
        ({**entry, "issuer": "http://issuer.example"}, "identities[0].issuer:"),
        ({**entry, "issuer": "http://127.0.0.1:1"}, "identities[0].issuer:"),  # the gateway itself
        ({k: v for k, v in entry.items() if k != "identityId"}, "identities[0].identityId:"),
    ]
    for bad, expected in cases:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({**base, "identities": [bad]}))
        with pytest.raises(ConfigError) as raised:
            configured_identities(load_config(path))
        assert f"{path.resolve()}: {expected}" in str(raised.value) or f"{path}: {expected}" in str(raised.value), raised.value
    path.write_text(yaml.safe_dump({**base, "identities": [entry, entry]}))
    with pytest.raises(ConfigError, match=r"identities\[1\].identityId: ci is given twice"):
        configured_identities(load_config(path))
