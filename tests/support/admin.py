"""A thin client of the gateway's admin API, as one caller sees it, with shortcuts that create
clients, keys, secrets, roles and records and assert that they were created."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from tests.support.processes import http_client


class Api:
    """The admin API at `base` as one caller sees it (`key`: an access key or a token; None:
    anonymous).

    By default every request goes over a connection of its own, so an `Api` made for one call
    (`gw.admin().delete(...)`) leaves nothing open; `keep_alive` keeps one connection pool for
    the `Api`'s life instead, and then whoever made it closes it.
    """

    def __init__(self, base: str, key: str | None, *, keep_alive: bool = False) -> None:
        self.base = base.rstrip("/")
        self.key = key
        self._http = http_client() if keep_alive else None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        if self._http is not None:
            return self._http.request(method, self.base + path, headers=headers, **kwargs)
        with http_client() as client:
            return client.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    # --- shortcuts that assert success ---

    def create_client(self, name: str | None = None, **body: Any) -> dict[str, Any]:
        response = self.post("/v1/clients", json={"name": name or f"c-{uuid.uuid4().hex[:8]}", **body})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_key(self, client_id: str) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/access-keys")
        assert response.status_code == 201, response.text
        return dict(response.json())

    def new_client_with_key(self, **body: Any) -> tuple[str, str]:
        """A new client and its first access key: (client id, access key)."""
        created = self.create_client(**body)
        return created["clientId"], self.create_key(created["clientId"])["accessKey"]

    def create_secret(self, client_id: str) -> dict[str, Any]:
        """A client secret; it is shown once, so the answer must not be stored by caches."""
        response = self.post(f"/v1/clients/{client_id}/secrets")
        assert response.status_code == 201, response.text
        assert response.headers.get("cache-control") == "no-store"
        data = dict(response.json())
        assert data["clientSecret"].startswith("gwcs_"), data
        return data

    def add_public_key(self, client_id: str, **body: Any) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/public-keys", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_role(self, actions: Sequence[str], *, grant: bool = False, role_id: str | None = None) -> str:
        role_id = role_id or f"role-{uuid.uuid4().hex[:10]}"
        response = self.post(
            "/v1/roles",
            json={
                "roleId": role_id,
                "name": role_id,
                "permissions": [
                    {"action": a, "allow": True, "grant": grant, "delegate": False} for a in actions
                ],
            },
        )
        assert response.status_code == 201, response.text
        return role_id

    def create_record(
        self,
        users: Sequence[str],
        roles: Sequence[str],
        resources: Sequence[str],
        record_id: str | None = None,
    ) -> str:
        record_id = record_id or f"rec-{uuid.uuid4().hex[:10]}"
        response = self.post("/v1/records", json=record_body(users, roles, resources, record_id))
        assert response.status_code == 201, response.text
        return record_id

    def grant(
        self, client_id: str, actions: Sequence[str], resources: Sequence[str], grant: bool = False
    ) -> tuple[str, str]:
        """A new role with `actions`, given to `client_id` on `resources` by a new record:
        (role id, record id)."""
        role_id = self.create_role(actions, grant=grant)
        return role_id, self.create_record([client_id], [role_id], resources)


def record_body(
    users: Sequence[str], roles: Sequence[str], resources: Sequence[str], record_id: str
) -> dict[str, Any]:
    return {
        "recordId": record_id,
        "name": record_id,
        "users": [{"userId": u} for u in users],
        "statements": [{"roles": list(roles), "resources": [{"resourceUri": r} for r in resources]}],
    }
