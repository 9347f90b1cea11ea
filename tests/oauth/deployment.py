"""The OAuth suite's deployment: its account, the API audience its tokens are for, the routes it
serves, and the settings of its gateways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.harness import write_policy

ACCOUNT = "oauthtest"
API_AUDIENCE = "https://api.example.com"

# Quiet logs and a short shutdown: the suite starts many gateways and reads none of their logs.
SETTINGS: dict[str, Any] = {"account": ACCOUNT, "log_level": "warning", "shutdown_timeout": "3s"}

POLICY = """\
upstreams:
  api:
    url: {upstream}
    timeout: 10s
    connect_timeout: 2s
routes:
  - id: read-things
    match: GET /things
    upstream: api
    scopes: [things.read]
  - id: write-things
    match: POST /things
    upstream: api
    scopes: [things.write]
    audience: {audience}
  - id: whoami
    match: GET /whoami
    upstream: api
    authenticated: true
  - id: tokens-only
    match: GET /tokens-only
    upstream: api
    auth: [gateway_jwt]
    authenticated: true
"""


def write_routes(directory: Path, upstream_url: str) -> Path:
    return write_policy(directory, POLICY.format(upstream=upstream_url, audience=API_AUDIENCE))
