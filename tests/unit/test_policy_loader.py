from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import PolicyError, load_policy


def problems(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    (tmp_path / name).write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy([tmp_path])
    return info.value.problems


def test_a_good_policy_compiles(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        """
upstreams:
  docs: {url: "http://127.0.0.1:9001/base/", timeout: 2s, connect_timeout: 500ms, pool_size: 8,
         strip_prefix: /api, preserve_host: true, retries: 0}
routes:
  - id: read
    match: GET /api/users/{userId}/documents/{docId}
    upstream: docs
    permission: documents:read
    resource: /users/{userId}/documents/{docId}
"""
    )
    policy = load_policy([tmp_path])
    up = policy.upstreams["docs"]
    assert (up.host, up.port, up.base_path, up.read_timeout, up.connect_timeout) == (
        "127.0.0.1",
        9001,
        "/base",
        2.0,
        0.5,
    )
    assert up.target_path("/api/users/1") == "/base/users/1"
    assert up.target_path("/apix/users/1") == "/base/apix/users/1"
    route = policy.routes[0]
    assert route.resource is not None
    assert route.resource.fill({"userId": "7", "docId": "9"}) == "/users/7/documents/9"
    assert route.auth == frozenset({"access_key", "client_jwt", "gateway_jwt", "oidc"})


def test_every_problem_names_file_route_and_field(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
upstreams:
  u: {url: "ftp://x"}
routes:
  - id: open
    match: GET /open
    upstream: u
  - id: typo
    match: GET /typo
    upstream: nowhere
    auth: none
    colour: blue
  - id: half
    match: GET /half/{id}
    upstream: u
    permission: documents:read
  - id: badres
    match: GET /r/{id}
    upstream: u
    permission: p
    resource: /r/{other}
  - match: GET /noid
""",
    )
    text = "\n".join(found)
    f = tmp_path / "p.yaml"
    assert f"{f}: upstream u: url: expected an http:// or https:// URL" in text
    assert f"{f}: route open: auth: the route must require" in text
    assert f"{f}: route typo: upstream: no upstream named 'nowhere'" in text
    assert f"{f}: route typo: colour: unknown field" in text
    assert f"{f}: route half: resource: required with permission" in text
    assert f"{f}: route badres: resource: {{other}} is not a parameter of the route's path" in text
    assert f"{f}: routes[4]: id: required" in text


def test_duplicate_ids_and_upstreams_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "upstreams:\n  u: {url: 'http://127.0.0.1:1'}\nroutes:\n  - {id: r, match: GET /a, upstream: u, auth: none}\n"
    )
    found = problems(
        tmp_path,
        "upstreams:\n  u: {url: 'http://127.0.0.1:2'}\nroutes:\n  - {id: r, match: GET /b, upstream: u, auth: none}\n",
        name="b.yaml",
    )
    assert any("b.yaml: upstream u: name: defined twice" in p for p in found)
    assert any("b.yaml: route r: id: already used in" in p and "a.yaml" in p for p in found)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "routes:\n  - id: x\n    match: [unclosed\n")
    assert len(found) == 1 and "not valid YAML at line" in found[0] and "p.yaml" in found[0]


def test_public_routes_cannot_require_anything(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "upstreams:\n  u: {url: 'http://127.0.0.1:1'}\nroutes:\n  - {id: r, match: GET /a, upstream: u, auth: none, scopes: [x]}\n",
    )
    assert any("route r: auth: an `auth: none` route cannot require" in p for p in found)


def test_routes_that_overlap_own_endpoints_are_refused_under_the_base_path(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "upstreams:\n  u: {url: 'http://127.0.0.1:1'}\nroutes:\n  - {id: r, match: 'GET /oauth/{x*}', upstream: u, auth: none}\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy([tmp_path])
    assert "overlaps the gateway's own endpoint /oauth/{endpoint*}" in str(info.value)
    # With public_url at /auth the gateway's endpoints move there, and /oauth/* is free.
    assert load_policy([tmp_path], base_path="/auth").routes[0].id == "r"


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy([tmp_path / "nope"])
    assert info.value.problems == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_hidden_folders_and_repeated_files_load_once(tmp_path: Path) -> None:
    # The layout of a Kubernetes ConfigMap volume: the files live in a hidden timestamped folder.
    text = "upstreams:\n  u: {url: 'http://127.0.0.1:1'}\nroutes:\n  - {id: r, match: GET /a, upstream: u, auth: none}\n"
    (tmp_path / "..2026_11_22").mkdir()
    (tmp_path / "..2026_11_22" / "p.yaml").write_text(text)
    (tmp_path / "p.yaml").write_text(text)
    policy = load_policy([tmp_path, tmp_path / "p.yaml"])
    assert [r.id for r in policy.routes] == ["r"]


def test_reserved_route_ids_and_literal_strip_prefix(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "upstreams:\n  u: {url: 'http://127.0.0.1:1', strip_prefix: '/api/{x}'}\n"
        "routes:\n  - {id: unmatched, match: GET /a, upstream: u, auth: none}\n",
    )
    assert any("route unmatched: id: 'unmatched' is reserved" in p for p in found)
    assert any("upstream u: strip_prefix: expected literal ASCII segments" in p for p in found)
