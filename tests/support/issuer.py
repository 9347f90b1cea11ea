"""A local OIDC issuer on 127.0.0.1 for the trusted-identity tests: discovery, a JWKS it can
rotate, break, slow down or blow up, and tokens shaped like GitHub Actions' and Kubernetes' (their
documented claims), signed with its keys.

It runs in a thread of the test process (a ThreadingHTTPServer), so a test changes its behaviour
by setting attributes and counts what the gateway fetched by reading `fetches`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Key:
    def __init__(self, alg: str = "RS256", kid: str | None = None) -> None:
        self.alg = alg
        self.kid = kid or uuid.uuid4().hex[:16]
        if alg in ("RS256", "PS256"):
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algorithm: Any = jwt.algorithms.RSAAlgorithm
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            algorithm = jwt.algorithms.ECAlgorithm
        self.jwk: dict[str, Any] = {
            **json.loads(algorithm.to_jwk(self.private.public_key())),
            "kid": self.kid,
            "use": "sig",
        }


class Issuer:
    """`with Issuer() as issuer:` serves http://127.0.0.1:PORT as an OIDC issuer."""

    def __init__(self, path: str = "") -> None:
        self.keys = [Key("RS256")]
        self.cache_control: str | None = "max-age=300"
        self.status = 200  # what /jwks answers (503: the issuer is down)
        self.delay = 0.0  # seconds before /jwks answers (a slow issuer)
        self.trickle = False  # with delay: send the body one byte every `delay` seconds
        self.huge = 0  # bytes of padding in the JWKS (a 10 MB JWKS)
        self.redirect: str | None = None  # /jwks redirects here
        self.fetches = 0  # /jwks requests received
        self.discoveries = 0
        self.path = path
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Issuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = {"keys": [k.jwk for k in self.keys]}
        if self.huge:
            document["padding"] = "x" * self.huge
        return document

    def rotate(self, alg: str = "RS256") -> Key:
        """A new key first in the JWKS; the old ones stay published."""
        key = Key(alg)
        self.keys.insert(0, key)
        return key

    def token(
        self,
        claims: dict[str, Any],
        key: Key | None = None,
        lifetime: int = 300,
        headers: dict[str, Any] | None = None,
        **override: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **claims,
            **override,
        }
        return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})})

    def github(
        self, audience: str, repository: str = "acme/deploy", ref: str = "refs/heads/main", **more: Any
    ) -> str:
        """A token shaped like GitHub Actions' OIDC token for a push to `ref`."""
        owner = repository.split("/")[0]
        kind, _, name = ref.removeprefix("refs/").partition("/")
        claims = {
            "sub": f"repo:{repository}:ref:{ref}",
            "aud": audience,
            "ref": ref,
            "ref_type": {"heads": "branch", "tags": "tag"}.get(kind, kind),
            "repository": repository,
            "repository_id": "123456789",
            "repository_owner": owner,
            "repository_owner_id": "42",
            "repository_visibility": "private",
            "run_id": "1",
            "run_number": "1",
            "run_attempt": "1",
            "actor": "octocat",
            "actor_id": "1",
            "workflow": "deploy",
            "workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "job_workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "event_name": "push",
            "runner_environment": "github-hosted",
            "sha": "0" * 40,
        }
        del name
        return self.token({**claims, **more})

    def kubernetes(self, audience: str, namespace: str = "payments", account: str = "billing") -> str:
        """A projected service account token (TokenRequest API) for `namespace`/`account`."""
        return self.token(
            {
                "sub": f"system:serviceaccount:{namespace}:{account}",
                "aud": [audience],
                "kubernetes.io": {
                    "namespace": namespace,
                    "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
                    "pod": {"name": f"{account}-7d4b9", "uid": str(uuid.uuid4())},
                },
            },
            lifetime=3600,
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, document: Any, cache_control: str | None = None) -> None:
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                if cache_control:
                    self.send_header("cache-control", cache_control)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == f"{issuer.path}/.well-known/openid-configuration":
                    with issuer._lock:
                        issuer.discoveries += 1
                    self._json(
                        {
                            "issuer": issuer.url,
                            "jwks_uri": issuer.jwks_url,
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        }
                    )
                elif path == f"{issuer.path}/jwks":
                    with issuer._lock:
                        issuer.fetches += 1
                    self._jwks()
                else:
                    self.send_error(404)

            def _jwks(self) -> None:
                if issuer.redirect:
                    self.send_response(302)
                    self.send_header("location", issuer.redirect)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if issuer.status != 200:
                    self.send_error(issuer.status)
                    return
                if issuer.trickle:
                    body = json.dumps(issuer.jwks()).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    try:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(issuer.delay)
                    except OSError:
                        pass
                    return
                if issuer.delay:
                    time.sleep(issuer.delay)
                with contextlib.suppress(OSError):
                    self._json(issuer.jwks(), issuer.cache_control)

        return Handler
