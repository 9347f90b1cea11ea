"""Defect 1: background loops survive any exception.

The change-feed loop once died on the first exception that was not a store error (a signing key
the master key cannot open raised SealError from the signing-change callback); from then on that
worker never saw a revocation again. Here the callback is broken on purpose, in a real gateway,
by sealing the current signing key's private half under garbage, and a key revoked afterwards
must still be refused within one second.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.hardening.conftest import running
from tests.identity.proxying import assert_invalid_token, bearer
from tests.support.harness import Gateway
from tests.support.processes import http_client


def _break_signing_keys(gw: Gateway) -> None:
    """Make the next signing-key reload fail: the current key's sealed private half becomes
    something no master key opens, and the change feed says the signing keys changed."""
    with sqlite3.connect(gw.directory / "gateway.db") as db:
        db.execute("UPDATE signing_keys SET sealed_private = 'v1.AAAA.AAAA' WHERE state = 'current'")
        db.execute(
            "INSERT INTO changes (at, kind, ref) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'signing', '*')"
        )


def test_revocation_lands_after_the_signing_callback_failed(tmp_path: Path, policy_file: Path) -> None:
    with running(tmp_path, policy_file) as gw:
        _break_signing_keys(gw)
        # Several polls (0.25 s apart) see the change and run the failing callback; a loop that
        # died on it stops here, one that survives goes on (nothing to poll for: a dead loop and
        # a live one look alike from outside until a revocation comes).
        time.sleep(1.0)
        admin = gw.admin()
        client_id, key = admin.new_client_with_key()
        with http_client() as http:
            for _ in range(3):  # verified and cached
                assert http.get(gw.public_url + "/whoami", headers=bearer(key)).status_code == 200
            key_id = key.split(".")[1]
            assert admin.delete(f"/v1/clients/{client_id}/access-keys/{key_id}").status_code == 204
            revoked_at = time.monotonic()
            while True:
                response = http.get(gw.public_url + "/whoami", headers=bearer(key))
                if response.status_code == 401:
                    break
                assert response.status_code == 200, response.text
                assert time.monotonic() - revoked_at < 1.0, "the revocation did not land within 1 s"
                time.sleep(0.02)
            assert_invalid_token(response)
            log = gw.log()  # the unexpected failure is logged once with its cause, not per poll
            assert log.count("Traceback") == 1, log[-3000:]
