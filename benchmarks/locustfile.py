"""A realistic traffic mix against any gateway deployment, for people who use locust.

    locust -f benchmarks/locustfile.py --headless --users 50 --spawn-rate 10 --run-time 1m \\
        --host http://127.0.0.1:8080

(`scripts/bench --locust 20` runs it against the bench gateway.) Each simulated service calls
public routes, now and then a path that matches no route (404 from the gateway), and a protected
route without a credential (401: refused, never forwarded); those refusals count as successes
when they carry the expected status, so the failure column means "the gateway answered wrong".
With a credential (see the hooks below) it also calls the protected route as an allowed client
and, optionally, as a client that has no grant (403).

Environment (defaults fit the policy `scripts/bench` writes):
    GATEWAY_PUBLIC_PATHS     comma-separated public (auth: none) paths   [/bench/public]
    GATEWAY_PROTECTED_PATH   a route that needs a permission              [/bench/users/1/documents/2]
    GATEWAY_UNMATCHED_PATH   a path no route matches                      [/bench/no/such/route]
    GATEWAY_ACCESS_KEY       an access key of a client granted the protected route (optional)
    GATEWAY_DENIED_ACCESS_KEY an access key of a client without that grant (optional)
    GATEWAY_TOKEN_URL        token endpoint (default {host}/oauth/token); set GATEWAY_USE_TOKEN=1 to
                             exchange the access key for a gateway token instead of sending it
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import FastHttpUser, between, task

PUBLIC_PATHS = [p for p in os.environ.get("GATEWAY_PUBLIC_PATHS", "/bench/public").split(",") if p]
PROTECTED_PATH = os.environ.get("GATEWAY_PROTECTED_PATH", "/bench/users/1/documents/2")
UNMATCHED_PATH = os.environ.get("GATEWAY_UNMATCHED_PATH", "/bench/no/such/route")
ACCESS_KEY = os.environ.get("GATEWAY_ACCESS_KEY", "")
DENIED_ACCESS_KEY = os.environ.get("GATEWAY_DENIED_ACCESS_KEY", "")
USE_TOKEN = os.environ.get("GATEWAY_USE_TOKEN", "") == "1"
TOKEN_URL = os.environ.get("GATEWAY_TOKEN_URL", "")


class GatewayUser(FastHttpUser):
    """One calling service."""

    wait_time = between(0.005, 0.05)

    def on_start(self) -> None:
        self.credential = self.fetch_credential(ACCESS_KEY)
        self.denied_credential = self.fetch_credential(DENIED_ACCESS_KEY)

    # ---- TOKEN HOOK ---------------------------------------------------------------------
    # How a caller gets the credential it sends. Today: the access key itself (a static key,
    # contract §2). With GATEWAY_USE_TOKEN=1: a gateway token from the token endpoint
    # (client_credentials, the access key as client secret, contract §3), fetched once per
    # simulated client, as Authress's SDKs cache it. Adjust here if your deployment differs.
    def fetch_credential(self, access_key: str) -> str | None:
        if not access_key:
            return None
        if not USE_TOKEN:
            return access_key
        url = TOKEN_URL or f"{(self.host or '').rstrip('/')}/oauth/token"
        form = {"grant_type": "client_credentials", "client_id": access_key.split(".")[0],
                "client_secret": access_key}
        with self.client.post(url, data=form, name="POST /oauth/token", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"token endpoint answered {r.status_code}")
                return None
            token: str = r.json()["access_token"]
            return token
    # -------------------------------------------------------------------------------------

    def expect(self, path: str, status: int, name: str, headers: dict[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {"name": name, "catch_response": True}
        if headers:
            kwargs["headers"] = headers
        with self.client.get(path, **kwargs) as r:
            if r.status_code == status:
                r.success()
            else:
                r.failure(f"expected {status}, got {r.status_code}")

    @task(20)
    def public_route(self) -> None:
        self.expect(random.choice(PUBLIC_PATHS), 200, "public route")

    @task(2)
    def unmatched_path(self) -> None:
        self.expect(UNMATCHED_PATH, 404, "unmatched path (404)")

    @task(3)
    def protected_without_credential(self) -> None:
        self.expect(PROTECTED_PATH, 401, "protected, no credential (401)")

    @task(10)
    def protected_allowed(self) -> None:
        if self.credential is not None:
            self.expect(PROTECTED_PATH, 200, "protected, granted (200)",
                        {"Authorization": f"Bearer {self.credential}"})

    @task(2)
    def protected_denied(self) -> None:
        if self.denied_credential is not None:
            self.expect(PROTECTED_PATH, 403, "protected, no grant (403)",
                        {"Authorization": f"Bearer {self.denied_credential}"})
