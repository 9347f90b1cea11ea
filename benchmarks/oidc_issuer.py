"""A local OIDC issuer for the `oidc` scenario: discovery and a JWKS served from a thread of the
harness on 127.0.0.1, and RS256 tokens shaped like GitHub Actions' (what most workloads present).
The gateway fetches the JWKS once (max-age one day) and then verifies from its cache; the token is
the same on every request, so the scenario measures the warm path, like `client_jwt`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from benchmarks.tokens import _signing_input, b64url

KID = "bench-oidc-1"


class LocalIssuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        self.jwks = {"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
                               "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                               "e": b64url(numbers.e.to_bytes(3, "big"))}]}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, audience: str, sub: str, lifetime: int) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": audience, "sub": sub, "iat": now, "nbf": now, "exp": now + lifetime,
                  "repository": "acme/bench", "ref": "refs/heads/main", "jti": b64url(now.to_bytes(8, "big"))}
        signing_input = _signing_input({"alg": "RS256", "typ": "JWT", "kid": KID}, claims)
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{b64url(signature)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    document: Any = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    document = issuer.jwks
                else:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "max-age=86400")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
