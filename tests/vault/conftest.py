"""Fixtures of the vault's tests: a real OAuth 2 authorization server (Authlib's, in
tests/vault/provider_app.py, its own process on 127.0.0.1), gateways that know it as a
connection, and service clients granted `credentials:read|write` on users' credentials.

The browser's part of the login flow is driven with httpx: it follows the gateway's
authorization URL to the provider, signs in as a test user and consents, and follows the
provider's redirect back to the gateway's callback.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.harness import Gateway, launcher, write_policy
from tests.support.postgres import Schemas, require_postgres
from tests.support.processes import clean_env, free_port, http_client, read_line, stop_process

CLIENT_ID = "gateway-vault-test"
CLIENT_SECRET = "provider-client-secret-" + uuid.uuid4().hex
SETTINGS: dict[str, Any] = {"account": "vaulttest", "log_level": "info", "shutdown_timeout": "3s"}
RESOURCE = "/user-credentials/refresh-tokens/users"
Launch = Callable[..., Gateway]


class Provider:
    """The authorization server process and what a test asks of it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.vault.provider_app", str(self.port), CLIENT_ID, CLIENT_SECRET],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=clean_env({"AUTHLIB_INSECURE_TRANSPORT": "1"}),  # plain http on loopback
            start_new_session=True,
        )
        assert read_line(self.proc, 20) == b"ready"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def state(self) -> dict[str, Any]:
        with http_client() as client:
            data: dict[str, Any] = client.get(f"{self.url}/_test/state").json()
        return data

    def set(self, **control: Any) -> None:
        with http_client() as client:
            client.post(f"{self.url}/_test/state", json=control).raise_for_status()

    def refreshes(self) -> int:
        return int(self.state()["counts"]["refresh_token"])

    def revoke_user(self, user: str) -> None:
        with http_client() as client:
            client.post(f"{self.url}/_test/revoke-user", json={"user": user}).raise_for_status()

    def connection(self, connection_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """The body of a connection to this provider (admin API shape)."""
        return {
            "connectionId": connection_id or f"prov-{uuid.uuid4().hex[:8]}",
            "name": "Test calendar provider",
            "authorizationUrl": f"{self.url}/authorize",
            "tokenUrl": f"{self.url}/token",
            "revocationUrl": f"{self.url}/revoke",
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "scopes": ["calendar.read"],
            "allowedRedirects": ["https://app.example.com/connected"],
            **extra,
        }

    def login(self, authorization_url: str, user: str = "alice", consent: bool = True) -> httpx.Response:
        """The browser: the provider's login page, sign in and consent, then the redirect to the
        gateway's callback, whose answer is returned (not followed further)."""
        with http_client() as browser:
            page = browser.get(authorization_url)
            assert page.status_code == 200, page.text
            answer = browser.post(
                authorization_url,
                data={
                    "username": user,
                    "password": f"{user}-password",
                    **({"consent": "yes"} if consent else {}),
                },
            )
            assert answer.status_code == 302, answer.text
            callback = answer.headers["location"]
            return browser.get(callback)

    def code_redirect(self, authorization_url: str, user: str = "alice") -> str:
        """Sign in and consent, but return the callback URL instead of visiting it."""
        with http_client() as browser:
            answer = browser.post(
                authorization_url, data={"username": user, "password": f"{user}-password", "consent": "yes"}
            )
            assert answer.status_code == 302, answer.text
            return str(answer.headers["location"])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    server = Provider()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def provider_defaults(provider: Provider) -> Iterator[None]:
    provider.set(expires_in=3600, fail=0, delay=0.0)
    yield
    provider.set(expires_in=3600, fail=0, delay=0.0)


def _policy(directory: Path) -> Path:
    return write_policy(directory / "policies", "routes: []\n")


def _launcher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Launch, list[Gateway]]:
    return launcher(tmp_path_factory.mktemp, _policy, SETTINGS)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    fn, started = _launcher(tmp_path_factory)
    try:
        yield fn
    finally:
        for gw in started:
            gw.stop()


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The shared deployment: SQLite, one worker."""
    fn, started = _launcher(tmp_path_factory)
    try:
        yield fn("shared")
    finally:
        for g in started:
            g.stop()


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[Callable[[], str]]:
    require_postgres()
    schemas = Schemas("t_vault_")
    try:
        yield schemas.new
    finally:
        schemas.drop_all()


def add_connection(gw: Gateway, provider: Provider, **extra: Any) -> str:
    response = gw.admin().post("/v1/connections", json=provider.connection(**extra))
    assert response.status_code == 201, response.text
    return str(response.json()["connectionId"])


def service(
    gw: Gateway,
    actions: tuple[str, ...] = ("credentials:read", "credentials:write"),
    resource: str = RESOURCE,
) -> str:
    """A service client holding `actions` on `resource` (all users' credentials by default); its
    access key."""
    api = gw.admin()
    client_id, key = api.new_client_with_key()
    role = api.create_role(list(actions))
    api.create_record([client_id], [role], [resource])
    return key


def credentials_path(connection_id: str, user_id: str) -> str:
    return f"/v1/connections/{connection_id}/users/{user_id}/credentials"


def authorize(gw: Gateway, key: str, connection_id: str, user_id: str, **body: Any) -> str:
    answer = gw.admin(key).post(f"/v1/connections/{connection_id}/users/{user_id}/authorize", json=body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["authorizationUrl"])


def connect_user(
    gw: Gateway, provider: Provider, key: str, connection_id: str, user_id: str, login: str = "alice"
) -> None:
    """`user_id` signs in at the provider as `login` through the gateway's login flow: the
    vault then holds a real refresh token for them."""
    done = provider.login(authorize(gw, key, connection_id, user_id), login)
    assert done.status_code == 200, done.text
