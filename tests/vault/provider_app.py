"""A real OAuth 2 authorization server for the vault's tests: Authlib's (authlib.integrations.
flask_oauth2) in a small Flask app, run as its own process on 127.0.0.1.

The protocol is Authlib's: the authorization-code grant with PKCE required (RFC 7636, S256),
refresh tokens with rotation (a used refresh token is revoked, and reusing it is invalid_grant),
and revocation (RFC 7009). What is ours is the storage (in memory), the login page of its test
users, and a few `/_test/*` endpoints through which a test reads counters, changes the access
token lifetime, makes the token endpoint fail (503) or slow, and revokes a user's grants.

Run: python -m tests.vault.provider_app PORT CLIENT_ID CLIENT_SECRET
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

USERS = {"alice": "alice-password", "bob": "bob-password"}


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)  # empty: any loopback callback

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri.startswith("http://127.0.0.1:") and "/oauth/connections/" in redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() - self.issued > 300


@dataclass
class Token:
    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str | None
    expires_in: int
    issued: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return CLIENTS[self.client_id]


CLIENTS: dict[str, Client] = {}
CODES: dict[str, Code] = {}
TOKENS: list[Token] = []
LOCK = threading.Lock()
CONTROL: dict[str, Any] = {"expires_in": 3600, "fail": 0, "delay": 0.0}
COUNTS: dict[str, int] = {"authorization_code": 0, "refresh_token": 0, "revocation": 0, "refused": 0}


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, req: Any) -> None:
        CODES[code] = Code(
            code,
            req.client.client_id,
            req.payload.redirect_uri,
            req.payload.scope or "",
            req.user,
            req.payload.data.get("code_challenge"),
            req.payload.data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = CODES.get(code)
        if found is not None and found.client_id == client.client_id and not found.is_expired():
            return found
        return None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        with LOCK:
            for token in TOKENS:
                if token.refresh_token == refresh_token and not token.revoked:
                    return token
        COUNTS["refused"] += 1
        return None

    def authenticate_user(self, credential: Token) -> str:
        return credential.user

    def revoke_old_credential(self, credential: Token) -> None:
        credential.revoked = True


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        for token in TOKENS:
            if token_string in (token.refresh_token, token.access_token):
                return token
        return None

    def revoke_token(self, token: Token, req: Any) -> None:
        COUNTS["revocation"] += 1
        token.revoked = True


def save_token(token: dict[str, Any], req: Any) -> None:
    with LOCK:
        TOKENS.append(
            Token(
                req.client.client_id,
                req.user,
                token.get("scope", ""),
                token["access_token"],
                token.get("refresh_token"),
                int(token["expires_in"]),
            )
        )


def create_app(client_id: str, client_secret: str) -> Flask:
    app = Flask(__name__)
    CLIENTS[client_id] = Client(client_id, client_secret)
    server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=save_token)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            lambda **_: secrets.token_urlsafe(24),
            lambda **_: "rt-" + secrets.token_urlsafe(24),
            lambda client, grant_type: CONTROL["expires_in"],
        ),
    )
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        if request.method == "GET":
            server.get_consent_grant(end_user=None)  # validates client, redirect_uri, PKCE
            return (
                '<form method="post"><input name="username"><input name="password" type="password">'
                '<button name="consent" value="yes">Allow</button></form>'
            )
        user = request.form.get("username", "")
        if USERS.get(user) != request.form.get("password") or request.form.get("consent") != "yes":
            return server.create_authorization_response(grant_user=None)  # access_denied
        return server.create_authorization_response(grant_user=user)

    @app.route("/token", methods=["POST"])
    def token() -> Any:
        grant_type = request.form.get("grant_type", "")
        if grant_type in COUNTS:
            COUNTS[grant_type] += 1  # counted on arrival: a test can act while it is delayed
        if CONTROL["delay"]:
            time.sleep(CONTROL["delay"])
        if CONTROL["fail"]:
            return jsonify({"error": "temporarily_unavailable"}), 503
        return server.create_token_response()

    @app.route("/revoke", methods=["POST"])
    def revoke() -> Any:
        return server.create_endpoint_response("revocation")

    @app.route("/_test/state", methods=["GET", "POST"])
    def state() -> Any:
        if request.method == "POST":
            CONTROL.update(request.get_json())
        return jsonify(
            {
                "counts": COUNTS,
                "control": CONTROL,
                "live_refresh_tokens": [t.refresh_token for t in TOKENS if not t.revoked and t.refresh_token],
                "all_refresh_tokens": [t.refresh_token for t in TOKENS if t.refresh_token],
            }
        )

    @app.route("/_test/revoke-user", methods=["POST"])
    def revoke_user() -> Any:
        user = request.get_json()["user"]
        with LOCK:
            for t in TOKENS:
                if t.user == user:
                    t.revoked = True
        return jsonify({"ok": True})

    return app


def main() -> None:
    port, client_id, client_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = make_server("127.0.0.1", port, create_app(client_id, client_secret), threaded=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
