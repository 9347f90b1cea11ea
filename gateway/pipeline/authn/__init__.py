"""Authentication: one authenticator per credential kind, tried in turn.

"Not mine" is not "denied": an authenticator that does not recognise a credential returns None
and the next one tries; one that recognises it and finds it bad raises InvalidToken, which ends
the chain with 401. A credential nobody recognises is refused too: the chain fails closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.errors import InvalidRequest, InvalidToken
from gateway.pipeline.identity import Identity


class Authenticator(Protocol):
    kind: str

    async def authenticate(self, credential: str) -> Identity | None:
        """The caller's identity; None when the credential is not of this kind; raises
        InvalidToken when it is of this kind but not valid."""
        ...


def bearer_credential(authorization: list[bytes], query_string: bytes) -> str | None:
    """The one bearer credential of a request, or None.

    Two credentials (two Authorization headers, or a header and an `access_token` query
    parameter, RFC 6750 §2) are refused: which one would count is exactly the kind of question
    an attacker likes to ask.
    """
    in_query = b"access_token=" in query_string and any(
        part.startswith(b"access_token=") for part in query_string.split(b"&")
    )
    if len(authorization) > 1 or (authorization and in_query):
        raise InvalidRequest("more than one credential in the request")
    if in_query:
        raise InvalidRequest("send the credential in the Authorization header, not the query string")
    if not authorization:
        return None
    try:
        value = authorization[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidToken("malformed Authorization header") from None
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise InvalidToken("expected Authorization: Bearer <credential>")
    return credential


class AuthenticatorChain:
    def __init__(self, authenticators: Sequence[Authenticator] = ()) -> None:
        self.authenticators = tuple(authenticators)

    async def authenticate(self, credential: str | None, accepted: frozenset[str]) -> Identity:
        if credential is None:
            raise InvalidToken(presented=False)
        for authenticator in self.authenticators:
            identity = await authenticator.authenticate(credential)
            if identity is None:
                continue
            if identity.method not in accepted:
                raise InvalidToken(f"{identity.method} credentials are not accepted on this route")
            return identity
        raise InvalidToken("unrecognised credential")
