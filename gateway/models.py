"""The domain as immutable values, at the bottom of the package: the store persists them, the
identity services cache them, the pipeline and the front doors pass them around; this module
imports nothing from the gateway. Field names follow Authress where Authress has the resource
(the admin API renders them camelCase)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.quota import RateLimit


def now_iso() -> str:
    """ISO 8601 UTC with milliseconds, as Authress writes times."""
    return iso_of(datetime.now(UTC))


def iso_of(moment: datetime) -> str:
    """The one format every stored time has, so that times compare as strings (in SQL too)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_of(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Expiring:
    """Mixed into credentials that may carry an expiry (issue 14): an expired credential is
    refused like a revoked one and no longer counts towards the limit of active ones."""

    __slots__ = ()
    expires_at: str | None

    @property
    def expires_epoch(self) -> float | None:
        return None if self.expires_at is None else epoch_of(self.expires_at)

    def expired(self, now: float) -> bool:
        expires = self.expires_epoch
        return expires is not None and expires <= now


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    created_at: str
    updated_at: str
    description: str | None = None
    tenant: str | None = None
    scopes: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    token_lifetime: int | None = None  # seconds; None: the gateway's default
    disabled: bool = False
    rate_limit: RateLimit | None = None  # requests per window for all of the client's calls


@dataclass(frozen=True, slots=True)
class AccessKey(Expiring):
    key_id: str
    client_id: str
    public_key: bytes  # raw Ed25519 public key
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None
    last_used: str | None = None  # minute precision, written in batches

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Permission:
    action: str
    allow: bool = True
    grant: bool = False
    delegate: bool = False


@dataclass(frozen=True, slots=True)
class Role:
    role_id: str
    name: str
    permissions: tuple[Permission, ...]
    created_at: str
    updated_at: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    roles: tuple[str, ...]
    resources: tuple[str, ...]  # resource URIs


@dataclass(frozen=True, slots=True)
class Record:
    record_id: str
    name: str
    users: tuple[str, ...]
    statements: tuple[Statement, ...]
    created_at: str
    updated_at: str
    description: str | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str  # client, key, grants
    ref: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    sealed_private: str
    public_jwk: str  # JSON
    state: str  # next, current, retired
    created_at: str
    activated_at: str | None = None
    retired_at: str | None = None


@dataclass(frozen=True, slots=True)
class ClientSecret(Expiring):
    secret_id: str
    client_id: str
    hash: str  # hex SHA-256 of the whole secret
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None
    last_used: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class ClientPublicKey:
    key_id: str
    client_id: str
    alg: str  # RS256, ES256 or EdDSA
    jwk: str  # JSON of the public JWK
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# Who a request comes from, as decided by an authenticator.


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
    # upstream asks for it): static keys and client-signed JWTs are long-lived secrets. Kept out
    # of repr(): identities sit in the caches and the decision memo, and a repr ends up in logs.
    forwardable_token: str | None = field(default=None, repr=False)
    # The trusted identity entry an `oidc` credential matched (contract §5).
    identity_id: str | None = None

    @classmethod
    def of_client(cls, client: Client, method: str, credential_id: str | None = None) -> Identity:
        """The identity a client's own credential (access key, client JWT) proves."""
        return cls(
            method=method,
            client_id=client.client_id,
            subject=client.client_id,
            tenant=client.tenant,
            scopes=frozenset(client.scopes),
            audiences=frozenset(client.audiences),
            credential_id=credential_id,
        )


ANONYMOUS = Identity(method="none")


@dataclass(frozen=True, slots=True)
class TrustedIdentity:
    """A trusted external identity (contract §5): tokens of `issuer` for `audience` whose claims
    meet `conditions` act as `client_id`. `revision` moves on every change, so the gateway
    tokens exchanged under one revision die with it."""

    identity_id: str
    issuer: str
    audience: str
    conditions: tuple[tuple[str, str], ...]  # (claim, exact value or pattern), sorted by claim
    client_id: str
    created_at: str
    updated_at: str
    jwks_uri: str | None = None
    preset: str | None = None
    revision: int = 1
    source: str = "api"  # api, or config (read-only)
