"""Who a request comes from, as decided by an authenticator."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Identity:
    method: str  # access_key, client_jwt, gateway_jwt, oidc, or none
    client_id: str | None = None
    subject: str | None = None
    tenant: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    audiences: frozenset[str] = field(default_factory=frozenset)
    # The access key (or other credential) this identity was proven with: a gateway token
    # issued on its strength dies with it (contract §2).
    credential_id: str | None = None
    # The gateway token itself, the only credential ever forwarded upstream (and only when the
    # upstream asks for it): static keys and client-signed JWTs are long-lived secrets.
    forwardable_token: str | None = None


ANONYMOUS = Identity(method="none")
