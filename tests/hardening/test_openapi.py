"""Defect 7: `/openapi.json` says what the admin API takes and returns.

schemathesis (a real third-party client: it reads the document, generates requests from it and
checks every answer against it) runs against a live gateway as its first administrator, bounded
in examples and time. Checks: no 5xx, every status code and content type documented, every
response body valid against its schema (nullable fields, required fields), and schema-valid
requests accepted where the schema can say what is valid.

Left out of the run, with the reason: the forward-auth decision endpoint (`/v1/decisions/...`)
answers every refusal with 401 or 403 by design (forward-auth proxies only understand those), so
"a missing credential must be 401 and a 404 must be a 404" does not apply; request acceptance is
not checked where validity depends on more than the schema can say (a public key must be a real
key, an expiry must lie in the future, a record's roles must exist, a trusted identity's token
must verify, a vault connection's URLs must be reachable providers).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.conftest import running
from tests.support.harness import Gateway
from tests.support.processes import clean_env

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    with running(tmp_path_factory.mktemp("openapi"), policy_file) as made:
        yield made


def _run(gw: Gateway, *args: str, budget: float) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{gw.admin_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {gw.admin_key}",
            "--exclude-path-regex",
            "^/v1/decisions/",
            "--seed",
            "9",
            "--no-shrink",
            "--continue-on-failure",
            "--request-timeout",
            "10",
            "--max-time",
            str(budget),
            "--workers",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=budget + 60,
        env=clean_env(),
        cwd=gw.directory,  # schemathesis keeps a cache folder where it runs
    )
    assert time.monotonic() - started < budget + 60
    return result


def test_responses_and_status_codes_conform(gw: Gateway) -> None:
    result = _run(gw, "--checks", CHECKS, "--max-examples", "6", "--phases", "examples,coverage,fuzzing", budget=15)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_schema_valid_requests_are_accepted(gw: Gateway) -> None:
    result = _run(
        gw,
        "--checks",
        "positive_data_acceptance",
        "--max-examples",
        "5",
        "--phases",
        "fuzzing",
        "--exclude-path-regex",
        "/public-keys$|/access-keys$|/secrets$|^/v1/records|^/v1/identities|^/v1/connections|/usage$",
        budget=6,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
