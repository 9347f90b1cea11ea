"""docs/vault.md's walkthrough, run as written: its shell blocks with curl against a real gateway,
its provider (`calendar.example.com`) played by the test's Authlib authorization server, the
user's login in between, and its Python snippet with the Authress SDK."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.harness import Gateway
from tests.support.processes import clean_env
from tests.vault.conftest import CLIENT_ID, CLIENT_SECRET, Provider

DOC = Path(__file__).resolve().parents[2] / "docs" / "vault.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def _as_here(block: str, gw: Gateway, provider: Provider, ids: dict[str, str]) -> str:
    """The doc's addresses and placeholders replaced by this deployment's."""
    replacements = {
        "http://127.0.0.1:8081": gw.admin_url,
        "https://calendar.example.com/oauth": provider.url,
        "gateway-at-calendar": CLIENT_ID,
        "the secret the provider gave you": CLIENT_SECRET,
        **ids,
    }
    for old, new in replacements.items():
        block = block.replace(old, new)
    return block


def _sh(block: str, env: dict[str, str]) -> list[str]:
    """Run a shell block; the output lines (one JSON answer per curl with -s)."""
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(env),
    )
    assert run.returncode == 0, run.stderr
    return [line for line in run.stdout.replace("}{", "}\n{").splitlines() if line.strip()]


def test_the_weekly_digest_walkthrough(gw: Gateway, provider: Provider) -> None:
    shell = _blocks("sh")
    connection, clients_and_grants, login, digest = shell[0], shell[1], shell[2], shell[3]
    env = {"ADMIN": gw.admin_key or ""}
    # 1. The connection (the id is the doc's: this test owns `calendar` on the shared gateway).
    created = json.loads(_sh(_as_here(connection, gw, provider, {}), env)[0])
    assert created["connectionId"] == "calendar" and created["hasClientSecret"] is True, created
    # 2. Two clients, two roles, two records: the client ids are the doc's placeholders.
    lines = clients_and_grants.splitlines()
    clients = [json.loads(o) for o in _sh(_as_here("\n".join(lines[:4]), gw, provider, {}), env)]
    digest_id, webapp_id = clients[0]["clientId"], clients[1]["clientId"]
    ids = {"DIGEST_CLIENT_ID": digest_id, "WEBAPP_CLIENT_ID": webapp_id}
    answers = [json.loads(o) for o in _sh(_as_here("\n".join(lines[4:]), gw, provider, ids), env)]
    assert [a.get("roleId") for a in answers[:2]] == ["credentials-reader", "credentials-manager"], answers
    assert all(a.get("recordId") for a in answers[2:]) and len(answers) == 4, answers
    env["DIGEST_KEY"] = gw.admin().create_key(digest_id)["accessKey"]
    env["WEBAPP_KEY"] = gw.admin().create_key(webapp_id)["accessKey"]
    # 3. The login flow: the webapp's call, then the user at the provider.
    started: dict[str, Any] = _within(lambda: json.loads(_sh(_as_here(login, gw, provider, ids), env)[0]))
    assert started["authorizationUrl"].startswith(f"{provider.url}/authorize?"), started
    done = provider.login(started["authorizationUrl"], "alice")
    assert (
        done.status_code == 303 and done.headers["location"] == "https://app.example.com/settings/connected"
    )
    # 4. The digest run, with curl and with the Authress SDK.
    token = _within(lambda: json.loads(_sh(_as_here(digest, gw, provider, ids), env)[0]))
    assert token["tokenType"] == "Bearer" and token["expiresIn"] > 3000 and token["accessToken"], token
    snippet = _as_here(_blocks("python")[0], gw, provider, ids)
    scope: dict[str, Any] = {"DIGEST_KEY": env["DIGEST_KEY"]}
    exec(snippet, scope)  # the doc's code, as a user pastes it
    assert scope["token"] == token["accessToken"]


def _within(call: Any, seconds: float = 2.0) -> Any:
    """A grant made a moment ago reaches the gateway through its change feed (under a second)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = call()
            if "error" not in result:
                return result
        except (AssertionError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            return call()
        time.sleep(0.1)
