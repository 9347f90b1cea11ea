"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3,
RFC 7523 §2.2): `client_secret_basic`, `client_secret_post` or `private_key_jwt`, exactly one.

A secret is a generated client secret (`gwcs_…`) or one of the client's access keys. Unknown
clients and wrong secrets get the same answer, and a secret is hashed either way, so neither the
body nor the timing tells whether a client id exists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import jwt

from gateway import jws
from gateway.config import Config
from gateway.crypto import CLIENT_ID, KEY_ID, PUBLIC_KEY_ID
from gateway.errors import InvalidClient, InvalidRequest, InvalidToken
from gateway.identity import secrets
from gateway.identity.directory import Directory
from gateway.jws import ED25519_NAMES
from gateway.models import Client
from gateway.pipeline.authn.access_key import AccessKeyAuthenticator
from gateway.presented import Presented, numeric_date

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ALGS = ("EdDSA", "Ed25519", "ES256", "RS256")  # Ed25519: RFC 9864's name for EdDSA on Ed25519


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    credential_id: str
    method: str


class ClientAuthenticator:
    def __init__(self, config: Config, directory: Directory, access_keys: AccessKeyAuthenticator) -> None:
        self.config = config
        self.directory = directory
        self.store = directory.store
        self.access_keys = access_keys
        self.audiences = {config.public_url, f"{config.public_url}/oauth/token"}

    def claimed_client(self, params: dict[str, str], authorization: str | None) -> str | None:
        """The client id a request says it is, for throttling before anything is checked."""
        if authorization and authorization[:6].lower() == "basic ":
            try:
                return unquote_plus(base64.b64decode(authorization[6:].strip()).decode().partition(":")[0])
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
        if "client_id" in params:
            return params["client_id"]
        assertion = params.get("client_assertion")
        if assertion:
            token = Presented(assertion).jwt
            sub = token.claims.get("sub") if token else None
            return sub if isinstance(sub, str) else None
        return None

    async def authenticate(
        self, params: dict[str, str], authorization: str | None
    ) -> AuthenticatedClient | None:
        """The authenticated client; None when the request carries no client authentication."""
        basic = authorization is not None and authorization[:6].lower() == "basic "
        methods = [
            name
            for name, present in (
                ("client_secret_basic", basic),
                ("client_secret_post", "client_secret" in params),
                ("private_key_jwt", "client_assertion" in params or "client_assertion_type" in params),
            )
            if present
        ]
        if len(methods) > 1:
            raise InvalidRequest("use exactly one client authentication method")
        if not methods:
            return None
        method = methods[0]
        if method == "private_key_jwt":
            return await self._private_key_jwt(params)
        if basic:
            assert authorization is not None
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                raw_id, sep, raw_secret = decoded.partition(":")
                if not sep:
                    raise ValueError
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise InvalidClient("malformed Basic credentials", basic=True) from None
            client_id = unquote_plus(raw_id)
            # RFC 6749 §2.3.1 says to form-encode both, but Authlib, curl -u and httpx send them
            # raw; an access key's base64 has `+`, which unquoting would turn into a space. Our
            # secrets never contain `%`, so one without it is taken as it is.
            secret = unquote_plus(raw_secret) if "%" in raw_secret else raw_secret
            if params.get("client_id", client_id) != client_id:
                raise InvalidRequest("client_id does not match the authenticated client")
        else:
            client_id, secret = params.get("client_id", ""), params["client_secret"]
        return await self._secret(client_id, secret, method, basic)

    async def _secret(self, client_id: str, secret: str, method: str, basic: bool) -> AuthenticatedClient:
        fail = InvalidClient(basic=basic)
        if not CLIENT_ID.match(client_id):
            secrets.hash_secret(secret)  # the same work as a real check
            raise fail
        credential_id: str | None = None
        if secret.startswith("sc_"):
            try:
                verified = await self.access_keys.authenticate(Presented(secret))
            except InvalidToken:
                raise fail from None
            if verified is not None and verified.identity.client_id == client_id:
                credential_id = verified.identity.credential_id
        else:
            secret_id = secrets.secret_id_of(secret)
            stored = await asyncio.to_thread(self.store.get_client_secret, secret_id) if secret_id else None
            if stored is None:
                secrets.hash_secret(secret)
            elif (
                secrets.matches(secret, stored.hash)
                and stored.active
                and not stored.expired(time.time())
                and stored.client_id == client_id
            ):
                credential_id = stored.secret_id
        if credential_id is None:
            raise fail
        client = await self.directory.client(client_id)
        if client is None or client.disabled:
            raise fail
        return AuthenticatedClient(client, credential_id, method)

    async def _private_key_jwt(self, params: dict[str, str]) -> AuthenticatedClient:
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = params.get("client_assertion")
        if not assertion:
            raise InvalidRequest("client_assertion: required")
        client_id, credential_id = await self.verify_assertion(assertion, params.get("client_id"))
        client = await self.directory.client(client_id)
        if client is None or client.disabled:
            raise InvalidClient()
        return AuthenticatedClient(client, credential_id, "private_key_jwt")

    async def verify_assertion(self, assertion: str, client_hint: str | None) -> tuple[str, str]:
        """Verify a private_key_jwt assertion (RFC 7523 §3); returns (client id, key id)."""
        token = Presented(assertion).jwt
        if token is None:
            raise InvalidClient("the client assertion is not a JWT")
        header, claims = token.header, token.claims
        alg, typ = header.get("alg"), header.get("typ")
        if (
            alg not in _ALGS
            or "crit" in header
            or not (typ is None or (isinstance(typ, str) and typ.lower() == "jwt"))
        ):
            raise InvalidClient("the client assertion's header is not acceptable")
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id or not CLIENT_ID.match(client_id):
            raise InvalidClient("the client assertion's iss and sub must be the client id")
        if client_hint is not None and client_hint != client_id:
            raise InvalidRequest("client_id does not match the client assertion")
        audience = claims.get("aud")
        audiences = (
            [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        )
        if not any(a in self.audiences for a in audiences if isinstance(a, str)):
            raise InvalidClient("the client assertion's aud must be the issuer or the token endpoint")
        self.check_times(claims, require_jti=True)
        keys = await self.candidate_keys(client_id, header.get("kid"), str(alg))
        for key_id, key in keys:
            try:  # the claims were checked above; this is the signature
                jws.verify(assertion, key, str(alg))
            except jwt.PyJWTError:
                continue
            await self.use_once(client_id, claims)
            return client_id, key_id
        raise InvalidClient()

    def check_times(self, claims: dict[str, Any], require_jti: bool) -> None:
        leeway = self.config.tokens.leeway
        longest = self.config.tokens.assertion_max_lifetime
        try:
            expires = numeric_date(claims, "exp")
            issued = numeric_date(claims, "iat")
            not_before = numeric_date(claims, "nbf")
        except ValueError as exc:
            raise InvalidClient(f"client assertion: {exc}") from None
        now = time.time()
        if expires is None or expires <= now - leeway:
            raise InvalidClient("the client assertion has expired (or has no exp)")
        if expires - now > longest + leeway or (issued is not None and expires - issued > longest + leeway):
            raise InvalidClient("the client assertion lives too long")
        if (issued is not None and issued > now + leeway) or (
            not_before is not None and not_before > now + leeway
        ):
            raise InvalidClient("the client assertion is not valid yet")
        jti = claims.get("jti")
        if (require_jti or jti is not None) and (not isinstance(jti, str) or not jti or len(jti) > 512):
            raise InvalidClient("the client assertion needs a jti")

    async def use_once(self, client_id: str, claims: dict[str, Any]) -> None:
        """Record the assertion's jti; a second use within its lifetime is refused, on every
        worker and replica (the store is the one place that remembers)."""
        jti = claims.get("jti")
        if jti is None:
            return
        digest = hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()
        expires = int(float(claims["exp"]) + self.config.tokens.leeway) + 1
        if not await asyncio.to_thread(self.store.use_jti, digest, expires, int(time.time())):
            raise InvalidClient("the client assertion was used already")

    async def candidate_keys(self, client_id: str, kid: object, alg: str) -> list[tuple[str, Any]]:
        """The client's active keys that can check this algorithm: its access keys (EdDSA) and its
        registered public keys; only the one named by `kid` when there is one."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        found: list[tuple[str, Any]] = []
        if kid is not None and not (isinstance(kid, str) and (KEY_ID.match(kid) or PUBLIC_KEY_ID.match(kid))):
            return found  # no key of ours has that id: nothing to look up
        # Read from the store, not the directory's cached list: a key registered or revoked a
        # moment ago on another worker counts at once here (the assertion's jti is written to
        # the store anyway); strangers reach this only with well-formed ids, and are throttled.
        keys = await asyncio.to_thread(self.directory.read_client_keys, client_id)
        if alg in ED25519_NAMES:
            for key in keys.access:
                if kid is None or kid == key.key_id:
                    found.append((key.key_id, Ed25519PublicKey.from_public_bytes(key.public_key)))
        for pk in keys.public:
            if pk.alg == jws.family(alg) and (kid is None or kid == pk.key_id):
                found.append((pk.key_id, jwt.get_algorithm_by_name(pk.alg).from_jwk(pk.jwk)))
        return found
