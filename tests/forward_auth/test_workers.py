"""The decision listener with several worker processes: every worker accepts on it (the
supervisor passes the third socket on), and a revocation lands in each of them within the bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.forward_auth.conftest import POLICY
from tests.support.harness import running_gateway
from tests.support.processes import Upstream, free_port, http_client


@pytest.mark.slow
def test_two_workers_answer_decisions_and_both_see_a_revocation(tmp_path: Path) -> None:
    with Upstream(tmp_path / "upstream") as upstream:
        policy = tmp_path / "routes.yaml"
        policy.write_text(POLICY.format(upstream=upstream.port))
        port = free_port()
        with running_gateway(
            tmp_path / "gw", [policy], workers=2, decisions={"listen": f"127.0.0.1:{port}"}
        ) as gw:
            assert len(gw.worker_pids()) >= 2  # the workers (and multiprocessing's helper)
            admin = gw.admin()
            client_id, key = admin.new_client_with_key()
            admin.grant(client_id, ["documents:read"], ["/docs/d1"])
            url = f"http://127.0.0.1:{port}/v1/decisions/v1/docs/d1"
            auth = {"Authorization": f"Bearer {key}", "Connection": "close"}  # spread over workers

            def statuses() -> set[int]:
                with http_client(fresh=True) as http:
                    return {http.get(url, headers=auth).status_code for _ in range(12)}

            deadline = time.monotonic() + 5
            while statuses() != {200}:  # the grant reaches both workers through the change feed
                assert time.monotonic() < deadline, "the grant did not reach every worker"
                time.sleep(0.1)
            keys = admin.get(f"/v1/clients/{client_id}/access-keys").json()
            keys = keys.get("accessKeys", keys.get("keys", keys)) if isinstance(keys, dict) else keys
            assert admin.delete(f"/v1/clients/{client_id}/access-keys/{keys[0]['keyId']}").status_code in (
                200,
                204,
            )
            revoked = time.monotonic()
            while statuses() != {401}:
                assert time.monotonic() - revoked < 2.0, "a worker still allowed the revoked key"
                time.sleep(0.05)
            admin.close()
