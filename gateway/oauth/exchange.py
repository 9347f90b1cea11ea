"""External tokens at the token endpoint (contract §3, §5): RFC 8693 token exchange, and an
external token as a jwt-bearer `assertion` (RFC 7523).

Either way the token must be one the `oidc` authenticator accepts (a trusted issuer, verified,
matching an entry); the gateway token issued for it belongs to the entry's client, with that
client's scopes and audiences, and carries the entry's id and revision as its `cid`, so deleting
or changing the entry ends the token within the revocation bound (identity.directory).
"""

from __future__ import annotations

from gateway.errors import InvalidGrant, InvalidRequest, InvalidToken
from gateway.identity.directory import Directory
from gateway.models import Client
from gateway.pipeline.authn.oidc import OidcAuthenticator
from gateway.presented import Presented

SUBJECT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"}
)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def subject_token(params: dict[str, str], client_authentication: bool) -> str:
    """The exchange request's subject token (RFC 8693 §2.1), after checking what comes with it."""
    if client_authentication:
        raise InvalidRequest("token exchange authenticates by the subject token alone")
    token = params.get("subject_token")
    if not token:
        raise InvalidRequest("subject_token: required")
    token_type = params.get("subject_token_type")
    if token_type not in SUBJECT_TOKEN_TYPES:
        raise InvalidRequest(f"subject_token_type: expected one of {', '.join(sorted(SUBJECT_TOKEN_TYPES))}")
    if "actor_token" in params or "actor_token_type" in params:
        raise InvalidRequest("actor_token: delegation is not supported")
    requested = params.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"requested_token_type: only {ACCESS_TOKEN_TYPE} is issued")
    return token


async def external_client(
    oidc: OidcAuthenticator, directory: Directory, token: Presented
) -> tuple[Client, str] | None:
    """(client, credential id) for a trusted external token; None when its issuer is not trusted
    (the caller decides what else it could be); InvalidGrant when it is trusted but not valid."""
    try:
        verified = await oidc.authenticate(token)
    except InvalidToken as exc:
        raise InvalidGrant(exc.description) from None
    if verified is None:
        return None
    assert verified.identity.client_id is not None and verified.identity.credential_id is not None
    client = await directory.client(verified.identity.client_id)
    if client is None or client.disabled:
        raise InvalidGrant("the client is disabled or deleted")
    return client, verified.identity.credential_id
