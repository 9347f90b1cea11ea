"""Which headers cross the gateway, in each direction (contract §4 "What the upstream receives").

One pass over the inbound headers sorts them into what is forwarded and what the gateway itself
needs (credentials, Host, request id, body framing, forwarding chain). Everything the gateway sets
(identity, X-Forwarded-*, X-Request-Id) is added after all stripping, so a caller can never
smuggle one in under another spelling.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

from gateway.errors import HeadersTooLarge, InvalidRequest

# RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard Proxy-Connection.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway (or taken from a trusted proxy), never passed through from a caller.
_FORWARDING = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
    }
)
# Headers that change what a request means to frameworks that honour them (issue 8): an upstream
# that reads X-HTTP-Method-Override would run DELETE where the gateway authorized GET, one that
# reads X-Original-URL another path. A caller's are dropped, whatever their spelling (`_`, `.`).
METHOD_AND_PATH_OVERRIDES = frozenset(
    {
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
        b"x-original-method",
        b"x-forwarded-method",
        b"x-original-url",
        b"x-original-uri",
        b"x-rewrite-url",
        b"x-forwarded-uri",
        b"x-forwarded-path",
        b"x-forwarded-prefix",
        b"x-envoy-original-path",
    }
)
_NOT_RELAYED = HOP_BY_HOP | {b"x-request-id"}
_PLAIN_CONNECTION = frozenset({b"", b"close", b"keep-alive"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(slots=True)
class Inbound:
    """The inbound headers, sorted."""

    forward: list[tuple[bytes, bytes]] = field(default_factory=list)
    authorization: list[bytes] = field(default_factory=list)
    host: bytes | None = None
    request_id: bytes | None = None
    content_length: int | None = None
    chunked: bool = False
    forwarded_for: bytes | None = None
    forwarded_proto: bytes | None = None
    forwarded_host: bytes | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def is_gateway_header(name: bytes) -> bool:
    """Whether a (lower-case) header name counts as X-Gateway-* (contract §4)."""
    # `X_Gateway.Client-Id` reaches some frameworks as X-Gateway-Client-Id (CGI maps `_` and `.`).
    return name.replace(b"_", b"-").replace(b".", b"-").startswith(b"x-gateway-")


def _never_forwarded(name: bytes) -> bool:
    """X-Gateway-* (ours alone) and the method and path overrides, in any spelling (as above)."""
    name = name.replace(b"_", b"-").replace(b".", b"-")
    return name.startswith(b"x-gateway-") or name in METHOD_AND_PATH_OVERRIDES


def sort_inbound(raw: list[tuple[bytes, bytes]], max_bytes: int, max_count: int) -> Inbound:
    """Sort the ASGI request headers (names arrive lower-cased); enforce the header limits."""
    if len(raw) > max_count:
        raise HeadersTooLarge(f"more than {max_count} request headers")
    inbound = Inbound()
    forward = inbound.forward
    size = 0
    named_by_connection: set[bytes] = set()
    for name, value in raw:
        size += len(name) + len(value) + 4
        if name in HOP_BY_HOP:
            if name == b"connection":
                named_by_connection.update(t.strip().lower() for t in value.split(b","))
            elif name == b"transfer-encoding":
                inbound.chunked = True
            continue
        if name == b"authorization":
            inbound.authorization.append(value)
        elif name == b"host":
            inbound.host = value
        elif name == b"content-length":
            if inbound.content_length is not None or not value.isdigit():
                raise InvalidRequest("invalid Content-Length")
            inbound.content_length = int(value)
            forward.append((name, value))
        elif name == b"x-request-id":
            inbound.request_id = value
        elif name in _FORWARDING:
            if name == b"x-forwarded-for":
                inbound.forwarded_for = (
                    value if inbound.forwarded_for is None else inbound.forwarded_for + b", " + value
                )
            elif name == b"x-forwarded-proto":
                inbound.forwarded_proto = value
            elif name == b"x-forwarded-host":
                inbound.forwarded_host = value
        elif name == b"expect" or (name[:1] == b"x" and _never_forwarded(name)):
            continue  # Expect is answered by our own server
        else:
            forward.append((name, value))
    if size > max_bytes:
        raise HeadersTooLarge(f"request headers are over {max_bytes} bytes")
    named_by_connection -= {b"", b"close", b"keep-alive"}
    if named_by_connection:
        inbound.forward = [(n, v) for n, v in forward if n not in named_by_connection]
        if b"content-length" in named_by_connection:
            inbound.content_length = None
    return inbound


def request_id_of(inbound: Inbound, generate: bytes) -> bytes:
    """The caller's X-Request-Id when it is well-formed, else the generated one."""
    rid = inbound.request_id
    return rid if rid is not None and _REQUEST_ID.match(rid) else generate


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)
def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def trusted_peer(peer: str, trusted: tuple[Network, ...]) -> bool:
    """Whether the peer's address is one of the configured `trusted_proxies`."""
    return bool(trusted) and _trusted(peer, trusted)


def forwarding_headers(
    inbound: Inbound, peer: str, scheme: str, trusted: tuple[Network, ...]
) -> tuple[list[tuple[bytes, bytes]], str]:
    """X-Forwarded-For/-Proto/-Host to send upstream, and the client address to act on.

    From an untrusted peer the chain is replaced by the peer's address; from a trusted proxy
    the peer is appended, and the client is the right-most address that is not a trusted proxy.
    """
    host = inbound.host
    if not trusted or not _trusted(peer, trusted):
        headers = [(b"x-forwarded-for", peer.encode()), (b"x-forwarded-proto", scheme.encode())]
        if host:
            headers.append((b"x-forwarded-host", host))
        return headers, peer
    chain = (
        [a.strip() for a in inbound.forwarded_for.decode("latin-1").split(",")]
        if inbound.forwarded_for
        else []
    )
    chain.append(peer)
    client = peer
    for address in reversed(chain):
        client = address
        if not _trusted(address, trusted):
            break
    headers = [
        (b"x-forwarded-for", ", ".join(chain).encode("latin-1")),
        (b"x-forwarded-proto", inbound.forwarded_proto or scheme.encode()),
    ]
    forwarded_host = inbound.forwarded_host or host
    if forwarded_host:
        headers.append((b"x-forwarded-host", forwarded_host))
    return headers, client


def client_address(raw: list[tuple[bytes, bytes]], peer: str, trusted: tuple[Network, ...]) -> str:
    """The address to throttle and audit: the peer, or, behind trusted proxies, the right-most
    X-Forwarded-For address that is not one of them (the same rule as forwarding_headers)."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    inbound = Inbound(forwarded_for=b", ".join(v for k, v in raw if k == b"x-forwarded-for") or None)
    return forwarding_headers(inbound, peer, "http", trusted)[1]


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers (names lower-cased) minus hop-by-hop ones, those named in
    Connection, and X-Request-Id (the caller gets ours, once, even when the upstream echoes it)."""
    out: list[tuple[bytes, bytes]] = []
    named: set[bytes] | None = None
    for name, value in raw:
        if name in _NOT_RELAYED:
            # `Connection: keep-alive` (what most upstreams send) names nothing else to drop.
            if name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                if named is None:
                    named = set()
                named.update(t.strip().lower() for t in value.split(b","))
            continue
        out.append((name, value))
    if named:
        named -= _PLAIN_CONNECTION
        if named:
            return [(n, v) for n, v in out if n not in named]
    return out
