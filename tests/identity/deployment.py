"""The identity suite's deployment: its account, the routes it serves, and its gateways."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.harness import Gateway, write_policy

ACCOUNT = "idtest"  # the account id inside every access key the suite's gateways issue

POLICY = """\
upstreams:
  documents:
    url: {upstream}
    timeout: 10s
    connect_timeout: 2s
routes:
  - id: read-document
    match: GET /v1/users/{{userId}}/documents/{{docId}}
    upstream: documents
    permission: documents:read
    resource: /users/{{userId}}/documents/{{docId}}
  - id: write-document
    match: PUT /v1/users/{{userId}}/documents/{{docId}}
    upstream: documents
    scopes: [documents.write]
    permission: documents:write
    resource: /users/{{userId}}/documents/{{docId}}
  - id: whoami
    match: GET /whoami
    upstream: documents
    authenticated: true
  - id: health
    match: GET /health
    upstream: documents
    auth: none
"""


def write_routes(directory: Path, upstream_url: str) -> Path:
    return write_policy(directory, POLICY.format(upstream=upstream_url))


def new_gateway(directory: Path, store: str, policies: Sequence[Path], **settings: Any) -> Gateway:
    """A gateway of the suite's account (not yet initialised or started)."""
    return Gateway(directory, store, policies, account=ACCOUNT, **settings)
