"""A `kill -9` of the gateway during a burst of admin writes loses no acknowledged write: every
client whose creation was answered 201 is there after a restart. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from gateway.config import StoreURL
from tests.identity.deployment import new_gateway
from tests.support.processes import http_client

BURST = 200
KILL_AFTER = 40


def test_kill_9_during_admin_writes_loses_no_acknowledged_write(
    tmp_path: Path, store_url: StoreURL, policy_file: Path
) -> None:
    gw = new_gateway(tmp_path / "durable", store_url.url, [policy_file])
    gw.init()
    gw.start()
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with http_client(timeout=5.0) as http:
            for i in range(BURST):
                if stop.is_set():
                    return
                try:
                    response = http.post(
                        f"{gw.admin_url}/v1/clients",
                        json={"name": f"durable-{i}"},
                        headers={"Authorization": f"Bearer {gw.admin_key}"},
                    )
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    return  # the gateway is gone
                if response.status_code == 201:
                    acknowledged.append(response.json()["clientId"])
                else:
                    failures.append(f"{response.status_code} {response.text}")

    thread = threading.Thread(target=writer, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < KILL_AFTER and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(acknowledged) >= KILL_AFTER, f"the burst did not get going: {failures}"
        gw.kill9()
        stop.set()
        thread.join(20)
        assert not thread.is_alive()
        assert not [f for f in failures if f[:1].isdigit()], failures  # no error answers before the kill
        assert len(acknowledged) < BURST, "the kill came after the burst ended; it proved nothing"

        gw.start()
        with http_client() as http:
            auth = {"Authorization": f"Bearer {gw.admin_key}"}
            missing = [
                cid
                for cid in acknowledged
                if http.get(f"{gw.admin_url}/v1/clients/{cid}", headers=auth).status_code != 200
            ]
            assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged clients were lost"
            # And the store is healthy: it takes writes again.
            assert (
                http.post(f"{gw.admin_url}/v1/clients", json={"name": "after"}, headers=auth).status_code
                == 201
            )
    finally:
        stop.set()
        gw.stop()
