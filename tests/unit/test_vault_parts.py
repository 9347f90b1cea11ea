"""The vault's pieces in-process: per-purpose sealing and master key ids, row bindings, and
connection validation (the admin API's and the config file's)."""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.crypto import MasterKey, Sealer, SealError
from gateway.errors import InvalidRequest
from gateway.vault_models import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    binding,
    connection_from,
    render_connection,
    user_id_of,
)

OLD, NEW = MasterKey(b"o" * 32), MasterKey(b"n" * 32)


def test_sealed_values_carry_the_master_key_id() -> None:
    sealed = Sealer(NEW).seal(b"rt", binding(REFRESH_TOKEN, "c", "u"))
    assert sealed.startswith(f"v2.{NEW.kid}.") and Sealer.key_id_of(sealed) == NEW.kid
    assert Sealer(NEW).is_current(sealed) and not Sealer(OLD, (NEW,)).is_current(sealed)


def test_each_purpose_has_a_key_of_its_own() -> None:
    sealer = Sealer(NEW)
    sealed = sealer.seal(b"token", binding(REFRESH_TOKEN, "c", "u"))
    # Same binding, another purpose: another HKDF info, so another key.
    with pytest.raises(SealError):
        sealer.open(sealed, binding(ACCESS_TOKEN, "c", "u"))
    raw = base64.urlsafe_b64decode(sealed.split(".")[2] + "==")
    single = AESGCM(NEW.derive("gateway-seal-v1"))
    with pytest.raises(InvalidTag):  # not sealed under the one shared key of v1
        single.decrypt(raw[:12], raw[12:], binding(REFRESH_TOKEN, "c", "u").encode())


def test_a_value_bound_to_one_row_does_not_open_for_another() -> None:
    sealer = Sealer(NEW)
    sealed = sealer.seal(b"token", binding(REFRESH_TOKEN, "c", "u1"))
    for other in (("c", "u2"), ("c2", "u1"), ("c", "u1", "x")):
        with pytest.raises(SealError):
            sealer.open(sealed, binding(REFRESH_TOKEN, *other))
    # JSON bindings: no user id can be made to look like another (connection, user) pair.
    assert binding(REFRESH_TOKEN, "a", "b:c") != binding(REFRESH_TOKEN, "a:b", "c")


def test_v1_values_still_open_and_reseal_to_v2_under_the_current_key() -> None:
    nonce = os.urandom(12)
    aad = "signing-key:sig_1"
    ct = AESGCM(OLD.derive("gateway-seal-v1")).encrypt(nonce, b"der", aad.encode())
    legacy = f"v1.{OLD.kid}.{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"
    rotating = Sealer(NEW, (OLD,))
    assert rotating.open(legacy, aad) == b"der"
    fresh = rotating.reseal(legacy, aad)
    assert rotating.is_current(fresh) and Sealer(NEW).open(fresh, aad) == b"der"
    with pytest.raises(SealError, match="not configured"):
        Sealer(NEW).open(legacy, aad)


def _body(**changes: object) -> dict[str, object]:
    return {
        "connectionId": "cal",
        "authorizationUrl": "https://p.example/authorize",
        "tokenUrl": "https://p.example/token",
        "clientId": "gw",
        "clientSecret": "s3cret",
        **changes,
    }


def test_connection_from_a_body_and_its_rendering_without_the_secret() -> None:
    connection, secret = connection_from(
        _body(authenticationUrl="https://p.example/a", authorizationUrl=None), None
    )
    assert secret == "s3cret" and connection.authorization_url == "https://p.example/a"
    assert connection.resource("u-1") == "/user-credentials/refresh-tokens/users/u-1"
    assert "s3cret" not in str(render_connection(connection))


def test_a_token_url_move_needs_the_secret_again() -> None:
    existing = replace(connection_from(_body(), None)[0], sealed_secret="v2.kid.sealed")
    kept, secret = connection_from(_body(clientSecret=None, name="x"), "cal", existing=existing)
    assert secret is None and kept.sealed_secret == existing.sealed_secret
    with pytest.raises(InvalidRequest, match=r"^clientSecret"):
        connection_from(
            _body(clientSecret=None, tokenUrl="https://q.example/token"), "cal", existing=existing
        )


def test_environment_secrets_over_the_api_are_fenced() -> None:
    with pytest.raises(InvalidRequest, match=r"^clientSecretEnv"):
        connection_from(_body(clientSecret=None, clientSecretEnv="DATABASE_PASSWORD"), None)
    allowed, _ = connection_from(_body(clientSecret=None, clientSecretEnv="GATEWAY_CONNECTION_CAL"), None)
    assert allowed.client_secret_env == "GATEWAY_CONNECTION_CAL"
    from_config, _ = connection_from(
        _body(clientSecret=None, clientSecretEnv="CAL_SECRET"), None, source="config"
    )
    assert from_config.source == "config"


@pytest.mark.parametrize("user_id", ["", "a/b", "x\n", "z" * 257, ".", "..", "a%2Fb", "a;b", "a\\b"])
def test_user_ids_that_cannot_be_one_path_segment(user_id: str) -> None:
    with pytest.raises(InvalidRequest):
        user_id_of(user_id)


@pytest.mark.parametrize("connection_id", ["", "cal\n", "a/b", "x" * 65, ".."])
def test_connection_ids_authress_would_refuse(connection_id: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^connectionId"):
        connection_from(_body(connectionId=connection_id), None)
