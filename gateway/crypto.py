"""Keys and secrets: the master key, sealing under it, identifiers, and access keys (contract §2).

Private keys are never stored: an access key's private half is returned once and only its public
key is kept. What must be stored secret (gateway signing keys, vault entries) is sealed with
AES-256-GCM under a key derived from the master key, and carries the master key's id so the
master key can be rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import ConfigError

_ALPHABET = string.ascii_letters + string.digits
CLIENT_ID = re.compile(r"^sc_[A-Za-z0-9]{22}$")
KEY_ID = re.compile(r"^acc_[A-Za-z0-9]{22}$")
# Ids of client secrets and registered public keys, as generated (checked before any lookup).
SECRET_ID = re.compile(r"^sec_[A-Za-z0-9]{16}$")
PUBLIC_KEY_ID = re.compile(r"^pk_[A-Za-z0-9]{22}$")
# PKCS#8 v1 DER of an Ed25519 private key: a fixed 16-byte prefix, then the 32-byte seed.
ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
ED25519_PKCS8_B64_PREFIX = "MC4CAQAwBQYDK2VwBCIEI"
_B64_STANDARD = re.compile(r"^[A-Za-z0-9+/]{64}$")


def random_id(prefix: str, length: int = 22) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_client_id() -> str:
    return random_id("sc_")


def new_key_id() -> str:
    return random_id("acc_")


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), as JWKs and token ids use it."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def fingerprint(secret: str) -> bytes:
    """What caches are keyed by instead of a presented secret: never the secret itself."""
    return hashlib.sha256(secret.encode()).digest()


# --- access keys -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    key_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key: the only part stored
    access_key: str  # the string returned once


def generate_access_key(client_id: str, account_id: str) -> NewAccessKey:
    private = Ed25519PrivateKey.generate()
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_id = new_key_id()
    encoded = base64.b64encode(der).decode()
    public = private.public_key().public_bytes_raw()
    return NewAccessKey(key_id, public, f"{client_id}.{key_id}.{account_id}.{encoded}")


@dataclass(frozen=True, slots=True)
class ParsedAccessKey:
    client_id: str
    key_id: str
    account_id: str
    seed: bytes

    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()

    def private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)


class MalformedAccessKey(ValueError):
    pass


def parse_access_key(text: str) -> ParsedAccessKey:
    """Strict parse of `{client_id}.{key_id}.{account_id}.{base64 PKCS#8}`.

    Cheap checks come first (length, the four parts, the alphabet, the fixed DER prefix), so a
    key of another type (RSA, X25519) in the last slot is refused before anything parses it. The
    public key is derived from the seed, never taken from an embedded public key.
    """
    if len(text) > 200:
        raise MalformedAccessKey("access key too long")
    parts = text.split(".")
    if len(parts) != 4:
        raise MalformedAccessKey("an access key has four dot-separated parts")
    client_id, key_id, account_id, encoded = parts
    if not CLIENT_ID.match(client_id) or not KEY_ID.match(key_id):
        raise MalformedAccessKey("malformed client or key id")
    if not account_id or len(account_id) > 40 or not account_id.isalnum():
        raise MalformedAccessKey("malformed account id")
    if not _B64_STANDARD.match(encoded) or not encoded.startswith(ED25519_PKCS8_B64_PREFIX):
        raise MalformedAccessKey("the key is not an Ed25519 PKCS#8 key")
    try:
        der = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise MalformedAccessKey("the key is not valid base64") from None
    if len(der) != 48 or not der.startswith(ED25519_PKCS8_PREFIX):
        raise MalformedAccessKey("the key is not an Ed25519 PKCS#8 key")
    return ParsedAccessKey(client_id, key_id, account_id, der[16:])


def same_public_key(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# --- the master key and sealing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MasterKey:
    key: bytes

    @property
    def kid(self) -> str:
        return hashlib.sha256(b"gateway-master-key-id" + self.key).hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose.encode()).derive(self.key)


def decode_master_key(text: str, where: str) -> MasterKey:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the master key is not base64") from None
    if len(key) != 32:
        raise ConfigError(f"{where}: the master key must be 32 bytes (base64 of 32 random bytes)")
    return MasterKey(key)


def load_master_key(path: Path | None, environ: dict[str, str] | os._Environ[str] = os.environ) -> MasterKey:
    """From GATEWAY_MASTER_KEY when set, else from the file."""
    if environ.get("GATEWAY_MASTER_KEY"):
        return decode_master_key(environ["GATEWAY_MASTER_KEY"], "GATEWAY_MASTER_KEY")
    if path is None:
        raise ConfigError("master_key_file: required key is missing (or set GATEWAY_MASTER_KEY)")
    try:
        return decode_master_key(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: the master key file does not exist (run `gateway init`)") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{path}: cannot read the master key file") from None


def create_master_key_file(path: Path) -> MasterKey:
    """Write a new random master key, readable by its owner only. Refuses to overwrite
    (FileExistsError). The key is written and synced under a temporary name, then linked into
    place, so a racing `gateway init` never reads a half-written file."""
    key = MasterKey(os.urandom(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.urlsafe_b64encode(key.key).decode().rstrip("=") + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)  # atomic; fails if the file exists
    finally:
        temporary.unlink(missing_ok=True)
    return key


class SealError(Exception):
    """A sealed value could not be opened (unknown master key id, or tampered)."""


class Sealer:
    """AES-256-GCM under keys derived from the master key (HKDF-SHA256).

    The associated data reads `<purpose>:<binding>` (`signing-key:<kid>`,
    `vault-refresh-token:<connection>\0<user>`, ...). Each purpose gets a key of its own (HKDF
    `info` = `gateway-seal-v2/<purpose>`), and the binding ties a value to the row it belongs to,
    so a sealed value copied to another use or another user does not open.

    Sealed values read `v2.<master key id>.<base64url(nonce | ciphertext)>`. `v1` values (one
    key for every purpose, before per-purpose keys) still open; `gateway keys rotate-master`
    re-seals them as v2. `previous` master keys open old values; only `current` seals.
    """

    def __init__(self, current: MasterKey, previous: tuple[MasterKey, ...] = ()) -> None:
        self.current = current
        self._masters = {k.kid: k for k in (*previous, current)}
        self._aeads: dict[tuple[str, str], AESGCM] = {}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._masters)

    def _aead(self, version: str, kid: str, aad: str) -> AESGCM | None:
        info = "gateway-seal-v1" if version == "v1" else f"gateway-seal-v2/{aad.split(':', 1)[0]}"
        found = self._aeads.get((kid, info))
        if found is None:
            master = self._masters.get(kid)
            if master is None:
                return None
            found = self._aeads[(kid, info)] = AESGCM(master.derive(info))
        return found

    def seal(self, plaintext: bytes, aad: str) -> str:
        nonce = os.urandom(12)
        aead = self._aead("v2", self.current.kid, aad)
        assert aead is not None
        ct = aead.encrypt(nonce, plaintext, aad.encode())
        return f"v2.{self.current.kid}.{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    @staticmethod
    def key_id_of(sealed: str) -> str:
        """The id of the master key a value is sealed under ("" when malformed)."""
        parts = sealed.split(".")
        return parts[1] if len(parts) == 3 else ""

    def is_current(self, sealed: str) -> bool:
        """Sealed under the current master key in the current format (nothing to re-seal)."""
        return sealed.startswith(f"v2.{self.current.kid}.")

    def open(self, sealed: str, aad: str) -> bytes:
        try:
            version, kid, blob = sealed.split(".")
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except (ValueError, binascii.Error):
            raise SealError("malformed sealed value") from None
        aead = self._aead(version, kid, aad) if version in ("v1", "v2") else None
        if aead is None:
            raise SealError(f"sealed under master key {kid[:16]!r}, which is not configured")
        try:
            return aead.decrypt(raw[:12], raw[12:], aad.encode())
        except Exception:
            raise SealError("sealed value does not open (tampered, or bound to another row)") from None

    def reseal(self, sealed: str, aad: str) -> str:
        """The same plaintext sealed under the current master key."""
        return self.seal(self.open(sealed, aad), aad)


def load_sealer(
    master_key_file: Path | None,
    previous_files: tuple[Path, ...] = (),
    environ: dict[str, str] | os._Environ[str] = os.environ,
) -> Sealer:
    """The current master key (GATEWAY_MASTER_KEY or `master_key_file`) and the previous ones
    kept readable while `gateway keys rotate-master` moves everything to the current one."""
    current = load_master_key(master_key_file, environ)
    previous = []
    for path in previous_files:
        try:
            previous.append(decode_master_key(path.read_text(encoding="ascii"), str(path)))
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"previous_master_keys: cannot read {path}") from None
    return Sealer(current, tuple(k for k in previous if k.kid != current.kid))
