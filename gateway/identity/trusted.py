"""Trusted external identities (contract §5), as values: validation of an entry, the presets,
claim conditions, and the in-memory index the `oidc` authenticator matches tokens against.

Nothing here does I/O, so the config loader, the admin API, the CLI and a console all validate
an entry the same way. Validation errors raise InvalidRequest with `<field>: <why>`.

Why the unique-claim rule: for GitHub Actions (and most CI issuers) whoever asks for a token
chooses its audience, so issuer + audience alone would trust every repository on GitHub. An
entry must therefore pin a claim that names one workload within its issuer (`sub`, or one the
preset names), with at least one literal segment that is not a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.crypto import CLIENT_ID, random_id
from gateway.errors import InvalidRequest
from gateway.models import TrustedIdentity, now_iso


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    issuer: str | None  # None: the entry names its issuer
    unique_claims: tuple[str, ...]


PRESETS = {
    p.name: p
    for p in (
        # https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
        # `repository_owner` is deliberately absent: it names every repository of an owner.
        Preset(
            "github-actions",
            "https://token.actions.githubusercontent.com",
            ("sub", "repository", "repository_id", "job_workflow_ref"),
        ),
        Preset("gitlab", "https://gitlab.com", ("sub", "project_path", "project_id")),
        # The cluster's issuer (`--service-account-issuer`); sub is system:serviceaccount:NS:NAME.
        Preset("kubernetes", None, ("sub",)),
    )
}
GENERIC_UNIQUE_CLAIMS = ("sub",)
MAX_CONDITIONS = 20
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_SEPARATORS = re.compile(r"([:/])")
_MAX_TEXT = 1000
IDENTITY_PREFIX = "tid_"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _string(body: Mapping[str, Any], field: str, required: bool) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise InvalidRequest(f"{field}: required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"{field}: expected a non-empty string of at most {_MAX_TEXT} characters")
    return value


def url_field(value: str, field: str) -> str:
    """An https URL, or http on a loopback host (a local issuer for tests and development)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment or parts.query:
        raise InvalidRequest(f"{field}: expected an https:// URL without query or fragment")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidRequest(f"{field}: must be https:// (http is allowed only on a loopback host)")
    return value


def compile_condition(pattern: str) -> re.Pattern[str] | None:
    """None for an exact value; else a regex where each `*` matches within one `:`/`/`-separated
    segment (one character or more, never a separator)."""
    if "*" not in pattern:
        return None
    return re.compile(
        "".join("[^:/]+" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    )


def _wildcard_only(pattern: str) -> bool:
    """Whether a pattern pins nothing: every segment is `*` (or empty)."""
    return all(seg in ("", "*", ":", "/") or set(seg) <= {"*"} for seg in _SEPARATORS.split(pattern))


def parse_conditions(raw: object, unique: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidRequest(
            f"conditions: required, a mapping of claim to value with one of {', '.join(unique)}"
        )
    if len(raw) > MAX_CONDITIONS:
        raise InvalidRequest(f"conditions: at most {MAX_CONDITIONS} claims")
    conditions = []
    for claim, value in raw.items():
        if not isinstance(claim, str) or not _CLAIM.match(claim):
            raise InvalidRequest("conditions: claim names are letters, digits and _ . : - (at most 64)")
        if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
            raise InvalidRequest(f"conditions.{claim}: expected a non-empty string")
        if "**" in value:
            raise InvalidRequest(f"conditions.{claim}: `*` matches within one segment; `**` is not allowed")
        conditions.append((claim, value))
    pinned = [c for c, v in conditions if c in unique and not _wildcard_only(v)]
    if not pinned:
        raise InvalidRequest(
            f"conditions: a condition on {' or '.join(unique)} with at least one literal segment is required "
            "(issuer and audience alone would trust every workload the issuer serves)"
        )
    return tuple(sorted(conditions))


def identity_from(
    body: Mapping[str, Any],
    identity_id: str | None = None,
    *,
    source: str = "api",
    previous: TrustedIdentity | None = None,
) -> TrustedIdentity:
    """An entry from the admin API's shape (also the config file's `identities:` items).

    `identity_id` comes from the path (PUT) or is generated (POST, unless the body names one);
    creation time and revision carry over from `previous`. Fields a caller may not set (times,
    revision, source) are never taken from the body."""
    preset_name = _string(body, "preset", required=False)
    preset = PRESETS.get(preset_name) if preset_name is not None else None
    if preset_name is not None and preset is None:
        raise InvalidRequest(f"preset: expected one of {', '.join(PRESETS)}")
    issuer = _string(body, "issuer", required=preset is None or preset.issuer is None)
    if issuer is None:
        assert preset is not None and preset.issuer is not None
        issuer = preset.issuer
    url_field(issuer, "issuer")
    jwks_uri = _string(body, "jwksUri", required=False)
    if jwks_uri is not None:
        url_field(jwks_uri, "jwksUri")
    audience = _string(body, "audience", required=True)
    assert audience is not None
    client_id = body.get("clientId")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise InvalidRequest("clientId: required, a service client id (sc_…)")
    unique = preset.unique_claims if preset is not None else GENERIC_UNIQUE_CLAIMS
    conditions = parse_conditions(body.get("conditions"), unique)
    if identity_id is None:
        raw_id = body.get("identityId")
        identity_id = random_id(IDENTITY_PREFIX, 22) if raw_id is None else raw_id
    if not isinstance(identity_id, str) or not _ID.match(identity_id):
        raise InvalidRequest("identityId: use letters, digits and . _ - (at most 128)")
    now = now_iso()
    return TrustedIdentity(
        identity_id=identity_id,
        issuer=issuer,
        audience=audience,
        conditions=conditions,
        client_id=client_id,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        jwks_uri=jwks_uri,
        preset=preset_name,
        revision=previous.revision + 1 if previous else 1,
        source=source,
    )


def render_identity(entry: TrustedIdentity) -> dict[str, Any]:
    return {
        "identityId": entry.identity_id,
        "issuer": entry.issuer,
        "audience": entry.audience,
        "conditions": dict(entry.conditions),
        "clientId": entry.client_id,
        "jwksUri": entry.jwks_uri,
        "preset": entry.preset,
        "source": entry.source,
        "createdTime": entry.created_at,
        "lastUpdated": entry.updated_at,
    }


def check_not_own_issuer(issuer: str, own: tuple[str, ...]) -> None:
    """The gateway's own tokens are never external ones: trusting them would let a gateway or
    identity token renew itself as another client."""
    if any(issuer == base or issuer.startswith(f"{base}/v1/clients/") for base in own):
        raise InvalidRequest("issuer: the gateway's own tokens cannot be trusted as external identities")


def credential_id(entry: TrustedIdentity) -> str:
    """The `cid` of gateway tokens exchanged under this entry's current revision; `@` never
    appears in ids, so the revision parses back unambiguously."""
    return f"identity:{entry.identity_id}@{entry.revision}"


def parse_credential_id(cid: str) -> tuple[str, int] | None:
    if not cid.startswith("identity:"):
        return None
    identity_id, _, revision = cid[len("identity:") :].rpartition("@")
    return (identity_id, int(revision)) if revision.isdigit() else None


# --- matching -------------------------------------------------------------------------------


class _Compiled:
    __slots__ = ("conditions", "entry")

    def __init__(self, entry: TrustedIdentity) -> None:
        self.entry = entry
        self.conditions = tuple((claim, value, compile_condition(value)) for claim, value in entry.conditions)

    def matches(self, claims: Mapping[str, Any]) -> bool:
        for claim, value, pattern in self.conditions:
            actual = claims.get(claim)
            if isinstance(actual, int) and not isinstance(actual, bool):
                actual = str(actual)
            if not isinstance(actual, str):
                return False
            if pattern is None:
                if actual != value:
                    return False
            elif pattern.fullmatch(actual) is None:
                return False
        return True


class TrustedIndex:
    """Every entry, by issuer, compiled once: a reference swapped whole when entries change."""

    def __init__(self, entries: Iterable[TrustedIdentity] = ()) -> None:
        self.entries: dict[str, TrustedIdentity] = {}
        self._by_issuer: dict[str, list[_Compiled]] = {}
        for entry in entries:
            self.entries[entry.identity_id] = entry
            self._by_issuer.setdefault(entry.issuer, []).append(_Compiled(entry))

    @property
    def issuers(self) -> frozenset[str]:
        return frozenset(self._by_issuer)

    def trusts(self, issuer: object) -> bool:
        return isinstance(issuer, str) and issuer in self._by_issuer

    def jwks_uri(self, issuer: str) -> str | None:
        """The JWKS URL an entry of this issuer names (the first, by id), else None: discovery."""
        uris = sorted((c.entry.identity_id, c.entry.jwks_uri) for c in self._by_issuer.get(issuer, ()))
        return next((uri for _, uri in uris if uri), None)

    def match(
        self, issuer: str, audiences: Iterable[str], claims: Mapping[str, Any]
    ) -> TrustedIdentity | None:
        """The entry (lowest id first, so the answer is stable) whose audience is one of the
        token's and whose conditions all hold; None when no entry matches."""
        wanted = set(audiences)
        found = [
            c.entry
            for c in self._by_issuer.get(issuer, ())
            if c.entry.audience in wanted and c.matches(claims)
        ]
        return min(found, key=lambda e: e.identity_id) if found else None

    def current(self, identity_id: str) -> TrustedIdentity | None:
        return self.entries.get(identity_id)
