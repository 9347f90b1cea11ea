"""The command line of the identity core (contract §10): `gateway policy explain`, and `gateway
init` (refuses an initialised store and changes nothing; safe when several run at once), and
`gateway serve` on a store that was never initialised."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import StoreURL
from tests.identity.deployment import new_gateway
from tests.support.harness import Gateway, serving
from tests.support.processes import clean_env, gateway_command, http_client

# --- policy explain ------------------------------------------------------------------------------


def _explain(
    gw: Gateway, client_id: str, method: str, path: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    result = gw.run("policy", "explain", "--client", client_id, method, path, *extra)
    # 0 when allowed, 3 when denied (issue 14: a script can test the answer).
    denied = '"decision": "deny"' in result.stdout or "decision deny" in result.stdout
    assert result.returncode == (3 if denied else 0), (result.stdout, result.stderr)
    return result


def test_explain_names_route_resource_record_and_role(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    client_id = admin.create_client()["clientId"]
    role_id, record_id = admin.grant(client_id, ["documents:read"], ["/users/1"])

    out = _explain(gw, client_id, "GET", "/v1/users/1/documents/2").stdout
    assert "read-document" in out
    assert "/users/1/documents/2" in out
    assert "documents:read" in out
    assert record_id in out and role_id in out
    assert "allow" in out.lower()

    data = json.loads(_explain(gw, client_id, "GET", "/v1/users/1/documents/2", "--json").stdout)
    assert data["decision"] == "allow"
    assert data["route"] == "read-document"
    assert data["resource"] == "/users/1/documents/2"
    assert data["permission"] == "documents:read"
    assert data["recordId"] == record_id and data["roleId"] == role_id


def test_explain_decides_as_the_proxy_does(gw: Gateway, admin_of: Any) -> None:
    """explain runs the proxy's own authorizer: for each request its status and error are the
    ones the proxy answers to the same client's access key."""
    admin = admin_of(gw)
    client_id, access_key = admin.new_client_with_key(scopes=["documents.write"])
    plain_id, plain_key = admin.new_client_with_key()
    admin.grant(client_id, ["documents:read", "documents:write"], ["/users/1"])
    admin.grant(plain_id, ["documents:write"], ["/users/1"])
    cases = [
        (client_id, access_key, "GET", "/v1/users/1/documents/2"),  # allowed by a grant
        (client_id, access_key, "GET", "/v1/users/2/documents/2"),  # no grant there
        (client_id, access_key, "PUT", "/v1/users/1/documents/2"),  # scope and grant
        (plain_id, plain_key, "PUT", "/v1/users/1/documents/2"),  # the grant, not the scope
        (plain_id, plain_key, "GET", "/whoami"),  # authenticated is enough
        (plain_id, plain_key, "GET", "/nowhere"),  # no route
    ]
    with http_client() as http:
        for who, key, method, path in cases:
            explained = json.loads(_explain(gw, who, method, path, "--json").stdout)
            answer = http.request(method, gw.proxy_url + path, headers={"authorization": f"Bearer {key}"})
            assert explained["status"] == answer.status_code, (method, path, explained, answer.text)
            assert explained["decision"] == ("allow" if answer.status_code == 200 else "deny")
            if answer.status_code == 403:
                assert answer.json()["error_description"] in explained["reason"], (path, explained)


def test_explain_says_why_not_and_lists_what_the_client_has(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    client_id = admin.create_client()["clientId"]
    role_id, record_id = admin.grant(client_id, ["documents:read"], ["/users/9"])

    out = _explain(gw, client_id, "GET", "/v1/users/1/documents/2").stdout
    assert "read-document" in out and "/users/1/documents/2" in out
    assert "deny" in out.lower()
    assert "no grant gives" in out.lower()
    # What the client does have: the action, where, and from which record and role.
    assert "/users/9" in out and record_id in out and role_id in out

    data = json.loads(_explain(gw, client_id, "GET", "/v1/users/1/documents/2", "--json").stdout)
    assert data["decision"] == "deny"
    assert data["route"] == "read-document" and data["resource"] == "/users/1/documents/2"
    assert {
        "recordId": record_id,
        "roleId": role_id,
        "action": "documents:read",
        "resource": "/users/9",
    } in data["grants"]

    bare = admin.create_client()["clientId"]
    out = _explain(gw, bare, "GET", "/v1/users/1/documents/2").stdout
    assert "deny" in out.lower() and "no grants" in out.lower()
    data = json.loads(_explain(gw, bare, "GET", "/v1/users/1/documents/2", "--json").stdout)
    assert data["decision"] == "deny" and data["grants"] == []

    data = json.loads(_explain(gw, bare, "GET", "/nowhere/at/all", "--json").stdout)
    assert data["decision"] == "deny" and "route" not in data


# --- init ----------------------------------------------------------------------------------------


def _state(gw: Gateway, store_url: StoreURL) -> dict[str, Any]:
    """Everything `gateway init` writes, read straight from the store, and the master key file."""
    from gateway.store import open_store

    store = open_store(store_url, run_migrations=False)
    try:
        state: dict[str, Any] = {
            "clients": store.list_clients(limit=1000),
            "roles": store.list_roles(limit=1000),
            "records": store.list_records(limit=1000),
            "keys": [store.list_access_keys(c.client_id) for c in store.list_clients(limit=1000)],
            "signing_keys": store.signing_keys(),
            "audit": store.list_audit(None, 1000),
            "changes": store.latest_change(),
            "meta": [store.get_meta(k) for k in ("initialized", "account_id")],
        }
    finally:
        store.close()
    state["master_key"] = (gw.directory / "master.key").read_bytes()
    return state


def _fresh(tmp_path: Path, store_url: StoreURL, name: str, policy_file: Path) -> Gateway:
    return new_gateway(tmp_path / name, store_url.url, [policy_file])


def test_init_on_an_initialised_store_changes_nothing(
    tmp_path: Path, store_url: StoreURL, policy_file: Path
) -> None:
    gw = _fresh(tmp_path, store_url, "init-twice", policy_file)
    first = gw.init()
    assert first["clientId"].startswith("sc_") and first["accessKey"].startswith(first["clientId"] + ".")
    before = _state(gw, store_url)

    again = gw.run("init", "--json")
    assert again.returncode != 0
    assert "initialised already" in again.stderr or "initialized already" in again.stderr
    assert first["accessKey"] not in again.stdout and "accessKey" not in again.stdout
    assert _state(gw, store_url) == before

    needed = gw.run("init", "--if-needed", "--json")
    assert needed.returncode == 0, needed.stderr
    assert "accessKey" not in needed.stdout
    assert _state(gw, store_url) == before
    assert [c.client_id for c in before["clients"]] == [first["clientId"]]


def _race(gw: Gateway, *flags: str, processes: int = 4) -> list[tuple[int, str, str]]:
    command = [*gateway_command("init", "--config", str(gw.config_path), "--json"), *flags]
    started = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=clean_env(),
            cwd=gw.directory,
        )
        for _ in range(processes)
    ]
    results = []
    for proc in started:
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append((proc.returncode, out, err))
    return results


@pytest.mark.parametrize("if_needed", [False, True], ids=["plain", "if-needed"])
def test_concurrent_init_makes_exactly_one_admin(
    tmp_path: Path, store_url: StoreURL, policy_file: Path, if_needed: bool
) -> None:
    gw = _fresh(tmp_path, store_url, "race", policy_file)
    results = _race(gw, *(["--if-needed"] if if_needed else []))
    winners = []
    for code, out, err in results:
        assert code is not None and code >= 0, err
        data = json.loads(out) if out.strip().startswith("{") else {}
        if "clientId" in data:
            assert code == 0, err
            winners.append(data)
        elif if_needed:
            assert code == 0, f"--if-needed must exit 0 when another replica initialised: {err}"
        else:
            assert code != 0, out
            assert "Traceback" not in err, err
    assert len(winners) == 1, results
    winner = winners[0]

    state = _state(gw, store_url)
    assert [c.client_id for c in state["clients"]] == [winner["clientId"]]
    assert [r.record_id for r in state["records"]] == ["gateway-admin"]
    assert len([k for k in state["signing_keys"] if k.state == "current"]) == 1
    assert len(state["keys"][0]) == 1

    if not if_needed:
        return
    # The one store the race left behind serves, and the winner's key administers it.
    gw.admin_key, gw.admin_id = winner["accessKey"], winner["clientId"]
    with serving(gw):
        api = gw.admin(keep_alive=True)
        try:
            listed = api.get("/v1/clients")
            assert listed.status_code == 200, listed.text
            assert [c["clientId"] for c in listed.json()["clients"]] == [winner["clientId"]]
        finally:
            api.close()


def test_serve_refuses_a_store_never_initialised(
    tmp_path: Path, store_url: StoreURL, policy_file: Path
) -> None:
    gw = _fresh(tmp_path, store_url, "never", policy_file)
    started = time.monotonic()
    result = subprocess.run(
        gateway_command("serve", "--config", str(gw.config_path)),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=gw.directory,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "gateway init" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    # Nothing listens on its ports.
    with http_client(1.0) as http:
        for url in (gw.public_url, gw.admin_url):
            with pytest.raises(httpx.ConnectError):
                http.get(url + "/readyz")


def test_explain_for_an_unknown_client_denies(gw: Gateway) -> None:
    ghost = "sc_" + uuid.uuid4().hex[:22]
    data = json.loads(_explain(gw, ghost, "GET", "/v1/users/1/documents/2", "--json").stdout)
    assert data["decision"] == "deny"
