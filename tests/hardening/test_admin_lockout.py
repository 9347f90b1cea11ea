"""Defect 8: the admin API refuses the change that would leave no administrator (409, saying
why), and the documented CLI recovery (docs/operations.md) gives an administrator back.

A fresh deployment has one administrator, `gateway init`'s client: every way of taking it away
through the API is tried and refused; with a second administrator in place the same changes
go through. Then the deployment is locked out on purpose through the CLI on the store's machine,
and the recovery commands from the docs, run as written, make a working administrator.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import running
from tests.support.admin import Api, record_body
from tests.support.checks import error_body
from tests.support.harness import Gateway
from tests.support.processes import PROJECT_DIR

ADMIN_ROLE = "gateway-admin"


def _refused(response: httpx.Response) -> None:
    body = error_body(response, 409, "conflict")
    assert "would leave no administrator" in body["error_description"], body


@pytest.fixture
def gw(tmp_path: Path, policy_file: Path) -> Iterator[Gateway]:
    with running(tmp_path, policy_file) as made:
        yield made


def test_every_way_of_removing_the_last_administrator_is_refused(gw: Gateway) -> None:
    admin = gw.admin()
    me = gw.admin_id
    assert me is not None and gw.admin_key is not None
    key_id = gw.admin_key.split(".")[1]
    _refused(admin.delete(f"/v1/clients/{me}"))
    _refused(admin.patch(f"/v1/clients/{me}", json={"disabled": True}))
    _refused(admin.delete(f"/v1/clients/{me}/access-keys/{key_id}"))
    _refused(admin.put(f"/v1/roles/{ADMIN_ROLE}", json={"name": "emptied", "permissions": []}))
    _refused(
        admin.put(
            f"/v1/roles/{ADMIN_ROLE}",
            json={"name": "less", "permissions": [{"action": "gateway:clients:read", "allow": True}]},
        )
    )
    _refused(admin.delete(f"/v1/roles/{ADMIN_ROLE}"))
    _refused(admin.delete("/v1/records/gateway-admin"))
    _refused(admin.put("/v1/records/gateway-admin", json=record_body([], [ADMIN_ROLE], ["/gateway"], "gateway-admin")))
    # Nothing changed: the administrator still administers.
    assert admin.get(f"/v1/clients/{me}").status_code == 200
    assert admin.get(f"/v1/roles/{ADMIN_ROLE}").json()["permissions"][0]["action"] == "gateway:*"

    # Unrelated changes pass; a second administrator lets the first one go.
    other, other_key = admin.new_client_with_key()
    assert admin.post("/v1/records", json=record_body([other], [ADMIN_ROLE], ["/gateway"], "second-admin")).status_code == 201
    assert admin.delete(f"/v1/clients/{me}/access-keys/{key_id}").status_code == 204
    second = Api(gw.admin_url, other_key)
    _refused(second.delete(f"/v1/clients/{other}"))  # now it is the last one
    assert second.delete(f"/v1/clients/{me}").status_code == 204


def _documented_recovery() -> list[str]:
    """The recovery commands of docs/operations.md, in order."""
    text = (PROJECT_DIR / "docs" / "operations.md").read_text()
    section = text.split("### Recovering an administrator", 1)[1].split("\n#", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the recovery section has no sh block"
    return [line for line in block.group(1).splitlines() if line.startswith("gateway ")]


def test_the_documented_cli_recovery_works(gw: Gateway) -> None:
    # Locked out on purpose, on the store's machine (the CLI is not held back).
    assert gw.run("records", "delete", "gateway-admin").returncode == 0
    assert gw.run("roles", "delete", ADMIN_ROLE).returncode == 0
    assert gw.admin().get("/v1/clients").status_code == 403
    outputs: dict[str, str] = {}
    for line in _documented_recovery():
        args = shlex.split(line)[1:]
        args = [outputs.get(a, a) for a in args]
        result = gw.run(*args)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        if "--with-key" in args:
            found = re.search(r"(sc_[A-Za-z0-9]{22})\.(acc_[A-Za-z0-9]{22})\.\S+", result.stdout)
            assert found, result.stdout
            outputs["sc_…"] = found.group(1)
            outputs["KEY"] = found.group(0)
    assert "sc_…" in outputs, "the recovery creates a client with --with-key"
    recovered = Api(gw.admin_url, outputs["KEY"])
    deadline = time.monotonic() + 1.5  # the grant reaches the workers through the change feed
    while (answer := recovered.get("/v1/clients")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer.status_code == 200, answer.text
