"""`client_jwt`: a JWT the service client signed itself with its access key (contract §2, way 2),
as Authress's ServiceClientTokenProvider makes it.

Recognised by its issuer, `<base>/v1/clients/<client_id>` for `public_url` or `admin.public_url`
(compared byte for byte). Then: `alg` must be EdDSA, or its RFC 9864 name Ed25519 (the only
algorithm an access key has), no
`crit`, `typ` absent or JWT/at+jwt; `kid` must be an active key of that very client; `sub` is the
client id; `iat`/`exp` are finite numbers, the lifetime is capped and the clock leeway applies;
`aud` is the account's Authress audience or `public_url`. Claims such as `scope` grant nothing:
the client's stored scopes decide. `jku`, `x5u`, `jwk` and `x5c` are never looked at.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway import jws
from gateway.crypto import CLIENT_ID, KEY_ID
from gateway.errors import InvalidToken
from gateway.identity.directory import Directory
from gateway.jws import ED25519_NAMES
from gateway.models import Identity
from gateway.pipeline.authn import Verified
from gateway.presented import Presented, numeric_date

_TYPES = (None, "jwt", "at+jwt")


class ClientJwtAuthenticator:
    kind = "client_jwt"

    def __init__(
        self,
        directory: Directory,
        account_id: str,
        bases: tuple[str, ...],
        audiences: tuple[str, ...],
        max_lifetime: float = 86400.0,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.prefixes = tuple(f"{base.rstrip('/')}/v1/clients/" for base in bases)
        self.audiences = frozenset((f"{account_id}.accounts.authress.io", *audiences))
        self.max_lifetime = max_lifetime
        self.leeway = leeway
        self.clock = clock

    def _client_of(self, issuer: object) -> str | None:
        if not isinstance(issuer, str):
            return None
        for prefix in self.prefixes:
            if issuer.startswith(prefix) and CLIENT_ID.match(issuer[len(prefix) :]):
                return issuer[len(prefix) :]
        return None

    async def authenticate(self, presented: Presented) -> Verified | None:
        token = presented.jwt
        if token is None:
            return None
        client_id = self._client_of(token.claims.get("iss"))
        if client_id is None:
            return None
        header, claims = token.header, token.claims
        alg = header.get("alg")
        if alg not in ED25519_NAMES:
            raise InvalidToken("client tokens must be signed with EdDSA (or Ed25519)", reason="malformed")
        if "crit" in header:
            raise InvalidToken("unsupported critical header", reason="malformed")
        typ = header.get("typ")
        if not (typ is None or (isinstance(typ, str) and typ.lower() in _TYPES)):
            raise InvalidToken("unexpected token type", reason="malformed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token has no kid", reason="malformed")
        if not KEY_ID.match(kid):  # not an access key id: refused before any lookup (defect 3)
            raise InvalidToken("unknown key", reason="unknown_key")
        if claims.get("sub") != client_id or claims.get("client_id", client_id) != client_id:
            raise InvalidToken("sub must be the client of the issuer", reason="malformed")
        try:
            issued = numeric_date(claims, "iat")
            expires = numeric_date(claims, "exp")
            not_before = numeric_date(claims, "nbf")
        except ValueError as exc:
            raise InvalidToken(str(exc), reason="malformed") from None
        if issued is None or expires is None:
            raise InvalidToken("iat and exp are required", reason="malformed")
        now = self.clock()
        if expires <= now - self.leeway:
            raise InvalidToken("token expired", reason="expired")
        if issued > now + self.leeway or (not_before is not None and not_before > now + self.leeway):
            raise InvalidToken("token not valid yet", reason="malformed")
        if expires - issued > self.max_lifetime + self.leeway:
            raise InvalidToken("token lifetime is too long", reason="malformed")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not any(
            isinstance(a, str) and a in self.audiences for a in audiences
        ):
            raise InvalidToken("token audience is not this gateway", reason="malformed")

        key = await self.directory.key(kid)
        if key is None or key.client_id != client_id:
            raise InvalidToken("unknown key", reason="unknown_key")
        # The signature comes before the key's and client's status, so only the key's holder
        # learns that it was revoked.
        try:
            jws.verify(presented.text, Ed25519PublicKey.from_public_bytes(key.public_key), str(alg))
        except jwt.PyJWTError:
            raise InvalidToken("bad signature", reason="bad_signature") from None
        if not key.active:
            raise InvalidToken("the access key was revoked", reason="revoked")
        key_expires = key.expires_epoch
        if key_expires is not None and key_expires <= now:
            raise InvalidToken("the access key expired", reason="expired")
        client = await self.directory.client(client_id)
        if client is None or client.disabled:
            raise InvalidToken("the client is disabled or deleted", reason="disabled_client")
        return Verified(
            Identity.of_client(client, self.kind, key.key_id),
            expires_at=expires + self.leeway
            if key_expires is None
            else min(expires + self.leeway, key_expires),
        )
