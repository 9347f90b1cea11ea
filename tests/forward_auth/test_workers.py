"""The decision listener with several worker processes: every worker accepts on it (the
supervisor passes the third socket on), and a revocation lands in each of them within the bound."""

from __future__ import annotations

import time

from tests.forward_auth.conftest import Deployment
from tests.support.admin import Api
from tests.support.processes import http_client


def test_every_worker_answers_decisions_and_sees_a_revocation(deployment: Deployment, admin: Api) -> None:
    assert len(deployment.gateway.worker_pids()) >= 2  # the workers (and multiprocessing's helper)
    client_id, key = admin.new_client_with_key()
    admin.grant(client_id, ["documents:read"], ["/docs/d1"])
    url = deployment.decisions_url + "/v1/docs/d1"
    auth = {"Authorization": f"Bearer {key}"}

    def statuses() -> set[int]:
        with http_client(fresh=True) as http:  # a connection per request: spread over the workers
            return {http.get(url, headers=auth).status_code for _ in range(12)}

    deadline = time.monotonic() + 5
    while statuses() != {200}:  # the grant reaches every worker through the change feed
        assert time.monotonic() < deadline, "the grant did not reach every worker"
        time.sleep(0.1)
    keys = admin.get(f"/v1/clients/{client_id}/access-keys").json()
    keys = keys.get("accessKeys", keys.get("keys", keys)) if isinstance(keys, dict) else keys
    assert admin.delete(f"/v1/clients/{client_id}/access-keys/{keys[0]['keyId']}").status_code in (200, 204)
    revoked = time.monotonic()
    while statuses() != {401}:
        assert time.monotonic() - revoked < 2.0, "a worker still allowed the revoked key"
        time.sleep(0.05)
