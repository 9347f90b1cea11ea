from __future__ import annotations

import json

from gateway.errors import InsufficientScope, InvalidToken, NotFound, render


def test_render_is_the_contract_shape() -> None:
    status, headers, body = render(NotFound(), "rid1")
    assert status == 404
    assert json.loads(body) == {
        "error": "not_found",
        "error_description": "no route matches this request",
        "request_id": "rid1",
    }
    h = dict(headers)
    assert h[b"content-type"] == b"application/json" and int(h[b"content-length"]) == len(body)
    assert b"www-authenticate" not in h


def test_www_authenticate_per_rfc_6750() -> None:
    _, headers, _ = render(InvalidToken(presented=False), "r")
    assert dict(headers)[b"www-authenticate"] == b'Bearer realm="gateway"'
    _, headers, _ = render(InvalidToken("token expired"), "r")
    assert dict(headers)[b"www-authenticate"].startswith(b'Bearer realm="gateway", error="invalid_token"')
    _, headers, _ = render(InsufficientScope(), "r")
    assert b'error="insufficient_scope"' in dict(headers)[b"www-authenticate"]
