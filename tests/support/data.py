"""Deterministic large bodies, generated chunk by chunk so neither side ever holds them whole.

Chunk `i` is the chunk index (8 bytes, big-endian) followed by a fixed pseudo-random block, so a
lost, repeated or reordered chunk changes the running SHA-256 that both sides compute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

CHUNK = 256 * 1024
_BLOCK = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(CHUNK // 32))


def chunk(index: int) -> bytes:
    return index.to_bytes(8, "big") + _BLOCK[8:]


def pattern(total: int) -> Iterator[bytes]:
    """`total` bytes of the pattern, in chunks of at most CHUNK bytes."""
    index = 0
    sent = 0
    while sent < total:
        piece = chunk(index)[: total - sent]
        yield piece
        sent += len(piece)
        index += 1


def pattern_digest(total: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern(total):
        digest.update(piece)
    return digest.hexdigest()
