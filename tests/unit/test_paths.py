from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.paths import canonicalize


@pytest.mark.parametrize(
    ("raw", "segments", "forwarded"),
    [
        (b"/", [""], "/"),
        (b"/v1/users/123", ["v1", "users", "123"], "/v1/users/123"),
        (b"/v1/users/", ["v1", "users", ""], "/v1/users/"),
        (b"/a/b%20c", ["a", "b c"], "/a/b%20c"),
        (b"/a/%41%42", ["a", "AB"], "/a/AB"),
        (b"/caf%C3%A9", ["café"], "/caf%C3%A9"),
        (b"/caf%c3%a9", ["café"], "/caf%C3%A9"),
        (b"/a/b+c:d@e!$&'()*,=~", ["a", "b+c:d@e!$&'()*,=~"], "/a/b+c:d@e!$&'()*,=~"),
        (b"/a/%7Euser", ["a", "~user"], "/a/~user"),
        (b"/a/%25", ["a", "%"], "/a/%25"),
        (b"/a/...", ["a", "..."], "/a/..."),
    ],
)
def test_canonical_paths(raw: bytes, segments: list[str], forwarded: str) -> None:
    assert canonicalize(raw) == (segments, forwarded)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"v1/users", "must start with /"),
        (b"*", "must start with /"),
        (b"/a/%2F/b", "encoded / or \\"),
        (b"/a%2fb", "encoded / or \\"),
        (b"/a/%5C", "encoded / or \\"),
        (b"/a/%5cb", "encoded / or \\"),
        (b"/a\\b", "encoded / or \\"),
        (b"/a/./b", ". or .."),
        (b"/a/../b", ". or .."),
        (b"/a/%2e/b", ". or .."),
        (b"/a/%2E%2e/b", ". or .."),
        (b"/a/.%2e/b", ". or .."),
        (b"/a/..", ". or .."),
        (b"/a//b", "empty segment"),
        (b"//a", "empty segment"),
        (b"/a/%00", "control character"),
        (b"/a/%0a", "control character"),
        (b"/a/%7F", "control character"),
        (b"/a/\x01", "control character"),
        (b"/a/%ff", "not valid UTF-8"),
        (b"/a/%c0%af", "not valid UTF-8"),
        (b"/a/\xff", "not valid UTF-8"),
        (b"/a;jsessionid=1/b", "; parameter"),
        (b"/a/b%3bc", "; parameter"),
        (b"/a/%252e%252e", "percent-encoded twice"),
        (b"/a/%zz", "malformed percent-escape"),
        (b"/a/%2", "malformed percent-escape"),
        (b"/a/%", "malformed percent-escape"),
    ],
)
def test_ambiguous_paths_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        canonicalize(raw)
    assert why in info.value.description
    assert info.value.status == 400


def test_forwarded_form_is_stable() -> None:
    # Canonicalizing the canonical form gives it back: the upstream gets one spelling per path.
    for raw in (b"/a/b%20c", b"/caf%c3%a9/x", b"/a/%7Euser/%41"):
        _, once = canonicalize(raw)
        assert canonicalize(once.encode())[1] == once
