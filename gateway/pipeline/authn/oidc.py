"""`oidc`: a token of a trusted external issuer (GitHub Actions, GitLab CI, a Kubernetes service
account, another IdP), contract §5.

Recognised by its `iss` alone: an issuer no entry trusts is "not mine", and the chain goes on.
Then the token must verify against that issuer's keys (identity/external.py) and match an entry:
its audience one of the token's `aud`, every condition met. No entry → 401 that says nothing about
which entries exist. The caller becomes the entry's client (its grants, scopes and tenant), with
the external `sub` as the subject and the entry's id as the credential, so deleting or changing
the entry ends it (the store's change bumps the client's generation; the chain re-verifies).
"""

from __future__ import annotations

from dataclasses import replace

from gateway.errors import InvalidToken
from gateway.identity.directory import Directory
from gateway.identity.external import ExternalTokenVerifier, audiences_of
from gateway.identity.trusted import credential_id
from gateway.models import Identity
from gateway.pipeline.authn import Verified
from gateway.presented import Presented


class OidcAuthenticator:
    kind = "oidc"

    def __init__(self, directory: Directory, verifier: ExternalTokenVerifier) -> None:
        self.directory = directory
        self.verifier = verifier

    async def authenticate(self, presented: Presented) -> Verified | None:
        token = presented.jwt
        if token is None:
            return None
        index = await self.directory.trusted()
        issuer = token.claims.get("iss")
        if not index.trusts(issuer):
            # Perhaps trusted a moment ago through another worker (at most one store read per
            # worker every quarter second, whoever sends such tokens).
            index = await self.directory.trusted_now()
            if not index.trusts(issuer):
                return None
        assert isinstance(issuer, str)
        claims = await self.verifier.verify(presented, index.jwks_uri(issuer))
        entry = index.match(issuer, audiences_of(claims), claims)
        if entry is None:  # perhaps made a moment ago through another worker
            entry = (await self.directory.trusted_now()).match(issuer, audiences_of(claims), claims)
        if entry is None:
            raise InvalidToken("the token is not trusted", reason="untrusted")
        client = await self.directory.client(entry.client_id)
        if client is None or client.disabled:
            raise InvalidToken("the client is disabled or deleted", reason="disabled_client")
        return Verified(
            replace(
                Identity.of_client(client, self.kind, credential_id(entry)),
                subject=claims["sub"],
                identity_id=entry.identity_id,
            ),
            expires_at=float(claims["exp"]) + self.verifier.leeway,
        )
