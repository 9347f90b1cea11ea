from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import PolicyError, load_policy
from gateway.policy.model import parse_template
from gateway.policy.table import overlaps

UPSTREAM = "upstreams:\n  u: {url: 'http://127.0.0.1:9'}\n"


def table_for(tmp_path: Path, *routes: tuple[str, str]):  # type: ignore[no-untyped-def]
    lines = [UPSTREAM, "routes:"]
    for rid, match in routes:
        lines.append(f"  - {{id: {rid}, match: '{match}', upstream: u, auth: none}}")
    (tmp_path / "p.yaml").write_text("\n".join(lines) + "\n")
    return load_policy([tmp_path]).table


def matched(table, method: str, path: str) -> str | None:  # type: ignore[no-untyped-def]
    m = table.match(method, path[1:].split("/"))
    return None if m is None else m.route.id


def test_literal_beats_param_beats_rest_whatever_the_order(tmp_path: Path) -> None:
    t = table_for(
        tmp_path,
        ("rest", "GET /users/{p*}"),
        ("param", "GET /users/{id}"),
        ("literal", "GET /users/me"),
    )
    assert matched(t, "GET", "/users/me") == "literal"
    assert matched(t, "GET", "/users/42") == "param"
    assert matched(t, "GET", "/users/42/files") == "rest"


def test_first_differing_segment_decides(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("a", "GET /api/x/{id}/profile"), ("b", "GET /api/{any}/42/{what}"))
    # segment 2 is literal in a and a parameter in b: a wins, though b has a literal later
    assert matched(t, "GET", "/api/x/42/profile") == "a"
    assert matched(t, "GET", "/api/y/42/profile") == "b"


def test_backtracks_when_the_literal_branch_dead_ends(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("deep", "GET /a/b/c"), ("wide", "GET /a/{x}/d"))
    assert matched(t, "GET", "/a/b/d") == "wide"
    assert matched(t, "GET", "/a/b/c") == "deep"


def test_named_method_beats_star_and_methods_are_case_sensitive(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("any", "* /items"), ("get", "GET|POST /items"))
    assert matched(t, "GET", "/items") == "get"
    assert matched(t, "POST", "/items") == "get"
    assert matched(t, "DELETE", "/items") == "any"
    assert matched(t, "get", "/items") == "any"


def test_method_mismatch_falls_to_a_less_specific_path(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("get", "GET /a/b"), ("post", "POST /a/{x}"))
    assert matched(t, "POST", "/a/b") == "post"
    assert matched(t, "PUT", "/a/b") is None


def test_get_answers_head_unless_a_head_route_exists(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("get", "GET /a"), ("get-b", "GET /b"), ("head-b", "HEAD /b"))
    assert matched(t, "HEAD", "/a") == "get"
    assert matched(t, "HEAD", "/b") == "head-b"


def test_trailing_slash_is_another_path_and_rest_needs_a_segment(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("plain", "GET /docs"), ("files", "GET /files/{p*}"), ("one", "GET /one/{id}"))
    assert matched(t, "GET", "/docs/") is None
    assert matched(t, "GET", "/files/") is None
    assert matched(t, "GET", "/one/") is None
    assert matched(t, "GET", "/files/a/b/") == "files"
    m = t.match("GET", ["files", "a", "b", ""])
    assert m is not None and m.params == {"p": "a/b/"}


def test_params_are_named_from_the_winning_route(tmp_path: Path) -> None:
    t = table_for(tmp_path, ("r", "GET /u/{userId}/d/{docId}"))
    m = t.match("GET", ["u", "7", "d", "9"])
    assert m is not None and m.params == {"userId": "7", "docId": "9"}


def test_same_shape_same_method_is_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        table_for(tmp_path, ("one", "GET /u/{a}"), ("two", "GET|PUT /u/{b}"))
    assert "route two: match: 'GET|PUT /u/{b}' is ambiguous with route one" in str(info.value)


def test_lookup_cost_does_not_grow_with_route_count(tmp_path: Path) -> None:
    # Structural, not timed: the table is a trie, so a lookup visits one node per segment.
    routes = [(f"r{i}", f"GET /svc{i}/items/{{id}}") for i in range(2000)]
    t = table_for(tmp_path, *routes)
    assert matched(t, "GET", "/svc1999/items/5") == "r1999"
    assert len(t._root.literals) == 2000


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/oauth/{x*}", "/oauth/token", True),
        ("/{a}/token", "/oauth/{x*}", True),
        ("/{a*}", "/.well-known/jwks.json", True),
        ("/oauthx", "/oauth/{x*}", False),
        ("/oauth", "/oauth/{x*}", False),
        ("/oauth/", "/oauth/{x*}", False),
        ("/v1/clients/{id}", "/v1/clients/{c}/.well-known/{d*}", False),
        ("/v1/{a}/{b}/.well-known/x", "/v1/clients/{c}/.well-known/{d*}", True),
    ],
)
def test_overlaps(a: str, b: str, expected: bool) -> None:
    assert overlaps(parse_template(a).segments, parse_template(b).segments) is expected
    assert overlaps(parse_template(b).segments, parse_template(a).segments) is expected


def test_the_first_branch_shortcut_answers_as_the_full_search(tmp_path: Path) -> None:
    """`RouteTable.match` walks the literal-first branch before searching: on random paths over a
    table with literals, parameters, rests, trailing slashes and methods, it must answer exactly
    as the depth-first search alone (route and parameter values)."""
    import random

    from gateway.policy.table import _find

    t = table_for(
        tmp_path,
        ("a", "GET /api/users/{id}"),
        ("b", "GET /api/users/me"),
        ("c", "POST /api/users/{id}/keys"),
        ("d", "GET /api/{kind}/{id}/keys"),
        ("e", "* /api/users/{p*}"),
        ("f", "GET /api/users/"),
        ("g", "GET /api/{kind}/me/keys/{key}"),
        ("h", "DELETE /api/users/me/keys/{key}"),
        ("i", "GET /api/{any*}"),
    )
    words = ["api", "users", "me", "keys", "42", "", "x"]
    rng = random.Random(8)
    reached = set()
    for _ in range(20_000):
        segments = ["api" if rng.random() < 0.9 else rng.choice(words)]
        segments += [rng.choice(words) for _ in range(rng.randint(0, 4))]
        method = rng.choice(["GET", "POST", "DELETE", "HEAD"])
        values: list[str] = []
        expected = _find(t._root, segments, 0, method, values)
        got = t.match(method, segments)
        if expected is None:
            assert got is None, (method, segments)
            continue
        assert got is not None and got.route is expected, (method, segments)
        assert list(got.params.values()) == values, (method, segments)
        reached.add(expected.id)
    assert reached == set("abcdefghi"), reached  # every route was the answer somewhere
