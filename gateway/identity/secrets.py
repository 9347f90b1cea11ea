"""Generated client secrets: `gwcs_<secret id>_<random><checksum>`.

The fixed prefix and a CRC32 checksum let secret scanners (GitHub's, trufflehog) recognise a
leaked secret without false positives, as GitHub's own tokens do. The secret id inside it lets the
gateway find the stored hash in one lookup. Only a SHA-256 of the secret is stored: it has 190
bits of randomness, so a fast hash is enough and a slow one would only slow the endpoint down.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib

from gateway.crypto import random_id

PREFIX = "gwcs_"
_ALPHABET = string.ascii_letters + string.digits
_SHAPE = re.compile(r"^gwcs_(sec_[A-Za-z0-9]{16})_([A-Za-z0-9]{32})([A-Za-z0-9]{6})$")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def new_secret() -> tuple[str, str, str]:
    """(secret id, the secret shown once, the hash to store)."""
    secret_id = random_id("sec_", 16)
    body = f"{PREFIX}{secret_id}_{''.join(secrets.choice(_ALPHABET) for _ in range(32))}"
    secret = body + _checksum(body)
    return secret_id, secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_id_of(secret: str) -> str | None:
    """The secret id when the text has the shape and checksum of a generated secret."""
    m = _SHAPE.match(secret)
    if m is None or not hmac.compare_digest(_checksum(secret[:-6]), m.group(3)):
        return None
    return m.group(1)


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
