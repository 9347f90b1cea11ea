"""Canonical request paths (contract §4 "Paths").

The gateway matches and authorizes the raw ASGI path (`scope["raw_path"]`), never `request.url`,
which is rebuilt from the Host header (Starlette GHSA-86qp-5c8j-p5mr). A path that an upstream
could read another way than we do is refused with 400 before anything else looks at it:

- `%2F` or `%5C` inside a segment, or a raw `\\` (servers that split on them see other segments);
- `.` or `..` segments, raw or percent-encoded (servers that normalise them see another path);
- empty segments (`//`), except the one a trailing `/` makes (that is a different path);
- NUL or other control characters, raw or encoded; invalid UTF-8 after decoding;
- `;` (matrix parameters, which Tomcat and Spring strip before routing), raw or encoded;
- a percent-escape that decodes to another percent-escape (`%252e`: double decoding upstream).

What is left has one reading. The upstream receives it re-encoded in one canonical form, so the
path it gets is exactly the one that was authorized.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from gateway.errors import InvalidRequest

# Bytes that may stand raw in a canonical path: RFC 3986 unreserved and sub-delims, ":", "@",
# and "/" as the separator, but not ";" (matrix parameters).
_RAW_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/"
_SEGMENT_SAFE = "-._~!$&'()*+,=:@"
_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_DOUBLE_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def canonicalize(raw_path: bytes) -> tuple[list[str], str]:
    """Split and decode a raw request path.

    Returns the decoded segments and the canonical encoded path to forward. Raises
    InvalidRequest for every ambiguous form listed in the module docstring.
    """
    if not raw_path.startswith(b"/"):
        raise InvalidRequest("the request path must start with /")
    if not raw_path.translate(None, _RAW_SAFE):
        # Fast path: nothing encoded, nothing unusual; the raw path is already canonical.
        path = raw_path.decode("ascii")
        segments = path[1:].split("/")
        _check_segments(segments)
        return segments, path
    if _PERCENT.search(raw_path):
        raise InvalidRequest("the request path has a malformed percent-escape")
    segments = []
    for raw in raw_path[1:].split(b"/"):
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the request path is not valid UTF-8") from None
        if "/" in segment or "\\" in segment:
            raise InvalidRequest("the request path has an encoded / or \\ inside a segment")
        if ";" in segment:
            raise InvalidRequest("the request path has a ; parameter")
        if _CONTROL.search(segment):
            raise InvalidRequest("the request path has a control character")
        if "%" in segment and _DOUBLE_ENCODED.search(segment):
            raise InvalidRequest("the request path is percent-encoded twice")
        segments.append(segment)
    _check_segments(segments)
    return segments, "/" + "/".join(quote(s, safe=_SEGMENT_SAFE) for s in segments)


def _check_segments(segments: list[str]) -> None:
    if "" not in segments[:-1] and "." not in segments and ".." not in segments:
        return  # the common case, checked by list scans in C
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "":
            if i != last:
                raise InvalidRequest("the request path has an empty segment (//)")
        elif segment == "." or segment == "..":
            raise InvalidRequest("the request path has a . or .. segment")


def check_segment(value: str, field: str) -> None:
    """An id that becomes one segment of a resource (a user id, a connection id): one reading
    only. Raises InvalidRequest naming `field`."""
    if value in ("", ".", "..") or _AMBIGUOUS.search(value):
        raise InvalidRequest(
            f"{field}: {value[:80]!r} is ambiguous as a path segment (empty, . or .., or /, \\, ;, %, a control character)"
        )


def check_resource(uri: str, field: str) -> None:
    """A resource URI as grants compare it (decoded text): the proxy's canonical-path rules
    (issue 9, defect 13). It starts with `/`; no empty, `.` or `..` segments, no trailing `/`
    (but `/` itself), no `\\`, `;` or control characters, and no `%` (an escape left in decoded
    text would be read twice). A URI that a service could later normalise into another one must
    never match a grant: raises InvalidRequest naming `field`."""
    if uri == "/":
        return
    if not uri.startswith("/"):
        raise InvalidRequest(f"{field}: must start with /")
    for segment in uri[1:].split("/"):
        check_segment(segment, field)


_AMBIGUOUS = re.compile(r"[/\\;%\x00-\x1f\x7f]")
