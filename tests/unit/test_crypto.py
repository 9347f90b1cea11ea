from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from gateway.crypto import (
    MalformedAccessKey,
    MasterKey,
    Sealer,
    SealError,
    create_master_key_file,
    generate_access_key,
    load_master_key,
    new_client_id,
    parse_access_key,
)
from gateway.errors import ConfigError


def pkcs8(key: object) -> str:
    der = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def test_generated_key_has_the_contract_format_and_round_trips() -> None:
    client = new_client_id()
    made = generate_access_key(client, "acme")
    parts = made.access_key.split(".")
    assert len(parts) == 4 and parts[0] == client and parts[1] == made.key_id and parts[2] == "acme"
    assert len(parts[3]) == 64 and parts[3].startswith("MC4CAQAwBQYDK2VwBCIEI") and "=" not in parts[3]
    parsed = parse_access_key(made.access_key)
    assert parsed.public_key() == made.public_key


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: k.rsplit(".", 1)[0],  # three parts
        lambda k: k + ".x",  # five parts
        lambda k: k.replace("sc_", "sx_", 1),
        lambda k: k[: k.rindex(".") + 1] + "!" * 64,
        lambda k: k[:-2] + "==",
        lambda k: k[:-8],  # truncated DER
        lambda k: k.split(".")[0] + "." + k.split(".")[1] + ".acme-corp." + k.split(".")[3],
        lambda k: ".".join(k.split(".")[:3]) + "." + pkcs8(x25519.X25519PrivateKey.generate()),
        lambda k: (
            ".".join(k.split(".")[:3])
            + "."
            + pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024))
        ),
        lambda k: k + "A" * 200,
    ],
)
def test_malformed_keys_are_refused_before_parsing(mutate) -> None:  # type: ignore[no-untyped-def]
    key = generate_access_key(new_client_id(), "acme").access_key
    with pytest.raises(MalformedAccessKey):
        parse_access_key(mutate(key))


def test_sealing_binds_the_purpose_and_the_master_key() -> None:
    a, b = MasterKey(b"a" * 32), MasterKey(b"b" * 32)
    sealed = Sealer(a).seal(b"secret", "signing-key:1")
    assert b"secret" not in sealed.encode() and sealed.split(".")[1] == a.kid
    assert Sealer(a).open(sealed, "signing-key:1") == b"secret"
    with pytest.raises(SealError):
        Sealer(a).open(sealed, "signing-key:2")
    with pytest.raises(SealError):
        Sealer(b).open(sealed, "signing-key:1")
    assert Sealer(b, previous=(a,)).open(sealed, "signing-key:1") == b"secret"  # rotation keeps old readable
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        Sealer(a).open(tampered, "signing-key:1")


def test_master_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k" / "master.key"
    key = create_master_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_master_key(path, environ={}) == key
    with pytest.raises(FileExistsError):
        create_master_key_file(path)
    with pytest.raises(ConfigError, match="run `gateway init`"):
        load_master_key(tmp_path / "absent", environ={})
    with pytest.raises(ConfigError, match="32 bytes"):
        load_master_key(None, environ={"GATEWAY_MASTER_KEY": "c2hvcnQ"})
