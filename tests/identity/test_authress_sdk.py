"""Interop with the real Authress Python SDK (PyPI `authress`), unchanged: its admin calls against
the admin API, its ServiceClientTokenProvider tokens at the proxy and at the admin API, its token
verifier against the client JWKS; and the gateway's own client library with httpx."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from authress import AuthressClient, ServiceClientTokenProvider
from authress.exceptions import ApiException, NotFoundException
from authress.models import (
    AccessRecord,
    Client,
    ClientOptions,
    PermissionObject,
    Resource,
    Role,
    Statement,
    User,
)

from gateway.client import GatewayAuth
from gateway.client import ServiceClientTokenProvider as GatewayTokenProvider
from tests.identity.deployment import ACCOUNT
from tests.identity.keys import Key
from tests.identity.proxying import bearer
from tests.support.checks import eventually
from tests.support.harness import Gateway
from tests.support.processes import http_client


def _eventually(check: Any, timeout: float = 1.5) -> Any:
    """Retry `check` (an SDK call that raises until a change has spread) for a bounded time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sdk(gw_sqlite: Gateway) -> AuthressClient:
    return AuthressClient(authress_api_url=gw_sqlite.admin_url, service_client_access_key=gw_sqlite.admin_key)


def test_service_clients_through_the_sdk(gw_sqlite: Gateway, sdk: AuthressClient, admin_of: Any) -> None:
    admin = admin_of(gw_sqlite)
    api = sdk.service_clients
    created = api.create_client(Client(name="sdk-made", options=ClientOptions()))
    assert isinstance(created, Client), created
    client_id = created.client_id
    assert client_id and client_id.startswith("sc_") and created.name == "sdk-made"
    assert created.created_time is not None

    got = api.get_client(client_id)
    assert isinstance(got, Client) and got.client_id == client_id and got.name == "sdk-made"

    # Listing, page by page with the SDK's limit and cursor.
    found = False
    cursor = None
    for _ in range(200):
        page = api.get_clients(limit=20, cursor=cursor)
        found = found or client_id in [c.client_id for c in page.clients]
        nxt = page.pagination.next if page.pagination else None
        cursor = nxt.cursor if nxt else None
        if not cursor:
            break
    assert found

    # A get → update round trip sends nulls and read-only fields back; the gateway takes it.
    admin.patch(f"/v1/clients/{client_id}", json={"scopes": ["documents.read"]})
    got.name = "sdk-renamed"
    updated = api.update_client(client_id, got)
    assert isinstance(updated, Client) and updated.name == "sdk-renamed"
    shown = admin.get(f"/v1/clients/{client_id}").json()
    assert shown["name"] == "sdk-renamed"
    assert shown["scopes"] == ["documents.read"], "an SDK update must not wipe fields it does not know"

    key = api.request_access_key(client_id)
    assert key.key_id and key.key_id.startswith("acc_")
    parts = key.access_key.split(".")
    assert parts[:3] == [client_id, key.key_id, ACCOUNT] and len(parts[3]) == 64
    assert key.key_id in [k.key_id for k in api.get_client(client_id).verification_keys]

    api.delete_access_key(client_id, key.key_id)
    assert api.get_client(client_id).verification_keys in ([], None)
    api.delete_client(client_id)
    with pytest.raises(NotFoundException):
        api.get_client(client_id)


def test_roles_records_and_authorize_user_through_the_sdk(
    gw_sqlite: Gateway, sdk: AuthressClient, admin_of: Any
) -> None:
    gw, admin = gw_sqlite, admin_of(gw_sqlite)
    client_id, access_key = admin.new_client_with_key()
    suffix = uuid.uuid4().hex[:8]
    role_id, record_id = f"sdk-reader-{suffix}", f"sdk-rec-{suffix}"
    user = str(random.randrange(10**9, 10**10))

    role = sdk.roles.create_role(
        Role(
            role_id=role_id,
            name="SDK reader",
            permissions=[PermissionObject(action="documents:read", allow=True, grant=False, delegate=False)],
        )
    )
    assert isinstance(role, Role) and role.role_id == role_id
    got_role = sdk.roles.get_role(role_id)
    assert [p.action for p in got_role.permissions] == ["documents:read"]
    got_role.permissions.append(
        PermissionObject(action="documents:list", allow=True, grant=False, delegate=False)
    )
    updated_role = sdk.roles.update_role(role_id, got_role)  # round trip: description null
    assert isinstance(updated_role, Role)
    assert sorted(p.action for p in updated_role.permissions) == ["documents:list", "documents:read"]

    record = sdk.access_records.create_record(
        AccessRecord(
            record_id=record_id,
            name="SDK record",
            users=[User(user_id=client_id)],
            statements=[Statement(roles=[role_id], resources=[Resource(resource_uri=f"/users/{user}")])],
        )
    )
    assert isinstance(record, AccessRecord) and record.record_id == record_id
    got_record = sdk.access_records.get_record(record_id)
    assert [u.user_id for u in got_record.users] == [client_id]
    got_record.name = "SDK record, renamed"
    sdk.access_records.update_record(record_id, got_record)  # round trip: nulls everywhere
    assert admin.get(f"/v1/records/{record_id}").json()["name"] == "SDK record, renamed"

    perms = sdk.user_permissions
    # Allowed: returns without raising (once the grant has spread); the resource URI travels as
    # one percent-encoded segment.
    assert (
        _eventually(lambda: perms.authorize_user(client_id, f"/users/{user}/documents/1", "documents:read"))
        is None
    )
    perms.authorize_user(client_id, f"/users/{user}", "documents:list")
    with pytest.raises(NotFoundException):
        perms.authorize_user(client_id, f"/users/{user}0/documents/1", "documents:read")
    with pytest.raises(NotFoundException):
        perms.authorize_user(client_id, f"/users/{user}/documents/1", "documents:write")

    # The SDK's token provider, with the gateway's public URL: accepted at the proxy.
    token = ServiceClientTokenProvider(access_key, gw.public_url).get_client_token()
    head = jwt.get_unverified_header(token)
    assert head["alg"] == "EdDSA" and head.get("typ") == "JWT"
    with http_client() as http:
        allowed = http.get(f"{gw.public_url}/v1/users/{user}/documents/1", headers=bearer(token))
        assert allowed.status_code == 200, allowed.text
        denied = http.get(f"{gw.public_url}/v1/users/{user}0/documents/1", headers=bearer(token))
        assert denied.status_code == 403, denied.text

        sdk.access_records.delete_record(record_id)
        with pytest.raises(NotFoundException):
            sdk.access_records.get_record(record_id)
        sdk.roles.delete_role(role_id)
        with pytest.raises(NotFoundException):
            sdk.roles.get_role(role_id)
        eventually(
            "the deleted record stops granting",
            lambda: http.get(f"{gw.public_url}/v1/users/{user}/documents/1", headers=bearer(token)).status_code
            == 403,
            1.5,
        )

    def refused() -> bool:  # the admin listener's worker may see the deletion a poll later
        try:
            perms.authorize_user(client_id, f"/users/{user}/documents/1", "documents:read")
        except NotFoundException:
            return True
        return False

    eventually("the check stops granting too", refused, 1.5)


def test_sdk_tokens_for_either_issuer_on_either_listener(gw_sqlite: Gateway, admin_of: Any) -> None:
    gw, admin = gw_sqlite, admin_of(gw_sqlite)
    for base in (gw.admin_url, gw.public_url):
        token = ServiceClientTokenProvider(gw.admin_key, base).get_client_token()
        assert (
            jwt.decode(token, options={"verify_signature": False})["iss"]
            == f"{base}/v1/clients/{gw.admin_id}"
        )
        with http_client() as http:
            response = http.get(f"{gw.admin_url}/v1/clients", params={"limit": 1}, headers=bearer(token))
            assert response.status_code == 200, (base, response.text)
    # An SDK client of the admin API whose own key has no gateway grant: 403, raised by the SDK.
    _, key = admin.new_client_with_key()
    with pytest.raises(ApiException) as raised:
        AuthressClient(
            authress_api_url=gw.admin_url, service_client_access_key=key
        ).service_clients.get_clients()
    assert raised.value.status == 403


def test_sdk_token_verifier_reads_the_client_jwks(gw_sqlite: Gateway, admin_of: Any) -> None:
    """Authress's verify_token fetches `{iss}/.well-known/openid-configuration/jwks?kid=…&iss=…`
    and checks the token with the key found there."""
    gw, admin = gw_sqlite, admin_of(gw_sqlite)
    client_id, access_key = admin.new_client_with_key()
    token = ServiceClientTokenProvider(access_key, gw.public_url).get_client_token()
    claims = AuthressClient(authress_api_url=gw.public_url).verify_token(token)
    assert claims["sub"] == client_id


def test_gateway_client_library_with_httpx(gw_sqlite: Gateway, admin_of: Any) -> None:
    gw, admin = gw_sqlite, admin_of(gw_sqlite)
    client_id, access_key = admin.new_client_with_key()
    user = str(random.randrange(10**9, 10**10))
    path = f"/v1/users/{user}/documents/3"
    provider = GatewayTokenProvider(access_key, gw.public_url)
    first = provider.get_token()
    assert provider.get_token() == first  # cached
    with httpx.Client(trust_env=False, timeout=10, auth=GatewayAuth(provider)) as http:
        assert http.get(gw.public_url + path).status_code == 403
        admin.grant(client_id, ["documents:read"], [f"/users/{user}"])
        deadline = time.monotonic() + 1.0
        while http.get(gw.public_url + path).status_code != 200:
            assert time.monotonic() < deadline, "the grant did not take effect within 1 s"
            time.sleep(0.05)
    # The same library against the admin API, with the admin listener's URL as issuer origin.
    admin_provider = GatewayTokenProvider(gw.admin_key or "", gw.admin_url)
    with httpx.Client(trust_env=False, timeout=10, auth=GatewayAuth(admin_provider)) as http:
        assert http.get(gw.admin_url + f"/v1/clients/{client_id}").status_code == 200
    # A key that is not a gateway access key is refused by the library itself.
    with pytest.raises(ValueError):
        GatewayTokenProvider(Key.parse(access_key).with_parts(encoded="A" * 64), gw.public_url)
