"""Master key rotation: a new key with the old one in `previous_master_keys`, `gateway keys
rotate-master` while traffic runs (refreshes storing rotated tokens meanwhile), then the old key
removed for good, and everything sealed (signing keys, connection secrets, users' tokens, a login
in flight) still opens."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from gateway.crypto import MasterKey, Sealer, load_master_key
from gateway.vault_models import ACCESS_TOKEN, CONNECTION_SECRET, REFRESH_TOKEN, binding
from tests.support.harness import Gateway
from tests.support.processes import http_client
from tests.vault.conftest import (
    Launch,
    Provider,
    add_connection,
    authorize,
    connect_user,
    credentials_path,
    service,
)

USERS = ("m1", "m2", "m3")


def _sealed_key_ids(gw: Gateway) -> set[str]:
    import sqlite3

    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        values = [r[0] for r in db.execute("SELECT sealed_private FROM signing_keys")]
        values += [
            r[0]
            for r in db.execute("SELECT sealed_secret FROM vault_connections WHERE sealed_secret IS NOT NULL")
        ]
        for refresh, access in db.execute("SELECT sealed_refresh, sealed_access FROM vault_entries"):
            values += [refresh] + ([access] if access else [])
        values += [r[0] for r in db.execute("SELECT sealed_verifier FROM vault_login_states")]
    finally:
        db.close()
    return {Sealer.key_id_of(v) for v in values}


@pytest.mark.slow
def test_rotate_master_while_serving_then_drop_the_old_key(launch: Launch, provider: Provider) -> None:
    gw = launch("rotate-master")
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=62)  # reads during the rotation refresh and store rotated tokens
    for i, user in enumerate(USERS):
        connect_user(gw, provider, key, connection, user, ("alice", "bob")[i % 2])
    pending = authorize(gw, key, connection, "m-later")  # a login that finishes after it all
    client_id, _ = gw.admin().new_client_with_key()
    secret = gw.admin().create_secret(client_id)["clientSecret"]
    old = load_master_key(gw.master_key_file)
    assert _sealed_key_ids(gw) == {old.kid}

    # New key current, old key readable; restart onto it.
    new_file = gw.directory / "master-2.key"
    created = gw.run_json("keys", "create-master", str(new_file))
    assert created["masterKeyId"] != old.kid
    gw.stop()
    old_file = gw.master_key_file
    gw.master_key_file = new_file
    gw.config["previous_master_keys"] = [str(old_file)]
    gw.rewrite_config()
    gw.start()

    failures: list[str] = []
    stop = threading.Event()
    done = {"reads": 0, "tokens": 0}

    def traffic() -> None:
        with http_client(fresh=True) as client:
            while not stop.is_set():
                for user in USERS:
                    r = client.get(
                        gw.admin_url + credentials_path(connection, user),
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    if r.status_code != 200:
                        failures.append(f"credentials {r.status_code} {r.text}")
                    done["reads"] += 1
                r = client.post(
                    gw.token_url, data={"grant_type": "client_credentials"}, auth=(client_id, secret)
                )
                if r.status_code != 200:
                    failures.append(f"token {r.status_code} {r.text}")
                done["tokens"] += 1

    runner = threading.Thread(target=traffic, daemon=True)
    runner.start()
    time.sleep(2.5)  # traffic flowing, and the access tokens are due for a refresh
    rotated = gw.run("keys", "rotate-master", "--json")
    time.sleep(0.5)
    stop.set()
    runner.join(30)
    assert rotated.returncode == 0, rotated.stderr
    assert failures == [], failures[:5]
    assert done["reads"] > 10 and done["tokens"] > 3
    report = json.loads(rotated.stdout)
    assert report["remaining"] == 0 and report["unreadable"] == []
    assert set(report["resealed"]) >= {"signing_keys", "vault_connections", "vault_login_states"}
    assert _sealed_key_ids(gw) == {created["masterKeyId"]}
    again = gw.run_json("keys", "rotate-master")  # resumable: nothing left to do
    assert again["resealed"] == {} and again["remaining"] == 0

    # The old key leaves the config and the disk.
    gw.stop()
    del gw.config["previous_master_keys"]
    gw.rewrite_config()
    old_file.unlink()
    gw.start()
    for user in USERS:
        assert gw.admin(key).get(credentials_path(connection, user)).status_code == 200
    time.sleep(2.1)  # due again: the refresh opens the connection's secret
    refreshes = provider.refreshes()
    assert gw.admin(key).get(credentials_path(connection, "m1")).status_code == 200
    assert provider.refreshes() == refreshes + 1
    assert provider.login(pending, "bob").status_code == 200  # its sealed PKCE verifier opens
    assert gw.admin(key).get(credentials_path(connection, "m-later")).status_code == 200
    with http_client() as client:
        token = client.post(gw.token_url, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert token.status_code == 200  # the signing key opens
    audit = gw.admin().get("/v1/audit", params={"limit": 200}).text
    assert "master_key.rotate" in audit


def test_an_unknown_master_key_is_named_at_start(launch: Launch) -> None:
    gw = launch("wrong-key", start=False)
    other = gw.directory / "other.key"
    gw.run_json("keys", "create-master", str(other))
    gw.master_key_file = other
    gw.rewrite_config()
    result = gw.run("keys", "rotate-master")
    assert result.returncode == 1 and "cannot be opened" in result.stderr
    assert "signing_keys" in result.stdout


def _reseal_row(gw: Gateway, table: str, where: dict[str, str], values: dict[str, str | None]) -> None:
    """Overwrite sealed columns of one row, as a row written under another master key looks."""
    import sqlite3

    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        with db:
            changed = db.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in values)}"
                f" WHERE {' AND '.join(f'{c} = ?' for c in where)}",
                (*values.values(), *where.values()),
            ).rowcount
    finally:
        db.close()
    assert changed == 1


def test_sealed_under_a_master_key_no_longer_configured_is_409_not_500(gw: Gateway, provider: Provider) -> None:
    """A user's credential sealed under a master key the gateway does not have (dropped from
    previous_master_keys too early, or written by a replica with another key) is a known state:
    409 reauthorization_required, no secret in the answer, the provider not called; deleting it
    works, and a new login is the way out. A connection secret under such a key: 502."""
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=3600)
    connect_user(gw, provider, key, connection, "gone-key")
    elsewhere = Sealer(MasterKey(os.urandom(32)))

    def sealed(purpose: str, value: str) -> str:
        return elsewhere.seal(value.encode(), binding(purpose, connection, "gone-key"))

    # Not read before this: the worker's cache is empty, so the stored row is what answers.
    _reseal_row(
        gw,
        "vault_entries",
        {"connection_id": connection, "user_id": "gone-key"},
        {"sealed_refresh": sealed(REFRESH_TOKEN, "rt-x"), "sealed_access": sealed(ACCESS_TOKEN, "at-x")},
    )
    refreshes = provider.refreshes()
    answer = gw.admin(key).get(credentials_path(connection, "gone-key"))
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "reauthorization_required"
    assert elsewhere.current.kid not in answer.text and "at-x" not in answer.text
    # Without a fresh access token the refresh token must open: refused the same way.
    _reseal_row(
        gw,
        "vault_entries",
        {"connection_id": connection, "user_id": "gone-key"},
        {"sealed_access": None},
    )
    answer = gw.admin(key).get(credentials_path(connection, "gone-key"))
    assert answer.status_code == 409 and answer.json()["error"] == "reauthorization_required", answer.text
    assert provider.refreshes() == refreshes  # never called with something that did not open
    assert "does not open" in gw.log()
    deadline = time.monotonic() + 5
    while "unreadable" not in gw.admin().get("/v1/audit", params={"limit": 200}).text:
        assert time.monotonic() < deadline, "the refused read is not in the audit log"
        time.sleep(0.2)

    # Deleting it works (nothing to revoke it with), and a new login is the way out.
    assert gw.admin(key).delete(credentials_path(connection, "gone-key")).status_code == 204
    assert gw.admin(key).get(credentials_path(connection, "gone-key")).status_code == 404
    connect_user(gw, provider, key, connection, "gone-key")
    assert gw.admin(key).get(credentials_path(connection, "gone-key")).status_code == 200

    # A connection whose client secret is sealed under such a key cannot call its provider.
    other = add_connection(gw, provider)
    _reseal_row(
        gw,
        "vault_connections",
        {"connection_id": other},
        {"sealed_secret": elsewhere.seal(b"s", binding(CONNECTION_SECRET, other))},
    )
    stored = gw.admin(key).put(credentials_path(other, "gone-key"), json={"refreshToken": "rt-y"})
    assert stored.status_code == 204, stored.text
    answer = gw.admin(key).get(credentials_path(other, "gone-key"))
    assert answer.status_code == 502 and answer.json()["error"] == "provider_unavailable", answer.text
    assert provider.refreshes() == refreshes  # the login's code exchange is not a refresh
