from __future__ import annotations

from gateway.identity.grants import compile_grants
from gateway.models import Permission, Record, Role, Statement

NOW = "2026-01-01T00:00:00.000Z"


def grants(*statements: tuple[list[Permission], list[str]]):  # type: ignore[no-untyped-def]
    roles = {f"r{i}": Role(f"r{i}", "r", tuple(perms), NOW, NOW) for i, (perms, _) in enumerate(statements)}
    record = Record(
        "rec",
        "rec",
        ("sc_x",),
        tuple(Statement((f"r{i}",), tuple(res)) for i, (_, res) in enumerate(statements)),
        NOW,
        NOW,
    )
    return compile_grants([record], roles)


def test_hierarchy_wildcard_segments_and_case() -> None:
    g = grants(([Permission("Documents:Read")], ["/users/123", "/orgs/*/docs"]))
    assert g.find("documents:read", "/users/123/documents/9") is not None
    assert g.find("DOCUMENTS:READ", "/users/123") is not None
    assert g.find("documents:read", "/users/1234") is None
    assert g.find("documents:read", "/users") is None
    assert g.find("documents:read", "/orgs/7/docs/1") is not None
    assert g.find("documents:write", "/users/123") is None


def test_action_wildcards_and_allow_false() -> None:
    g = grants(([Permission("documents:*"), Permission("admin:delete", allow=False)], ["/"]))
    assert g.find("documents:delete", "/a/b") is not None
    assert g.find("documents", "/a") is None
    assert g.find("admin:delete", "/a") is None


def test_star_and_root_never_confer_gateway_permissions() -> None:
    g = grants(([Permission("*", grant=True)], ["/"]), ([Permission("gateway:clients:*")], ["*"]))
    assert g.find("documents:read", "/x") is not None
    assert g.find("gateway:clients:read", "/gateway/clients") is None
    assert not g.can_confer_action("gateway:roles:write")
    assert g.can_confer_action("documents:read")
    admin = grants(([Permission("gateway:*", grant=True)], ["/gateway"]))
    assert admin.find("gateway:clients:write", "/gateway/clients/sc_1") is not None
    assert admin.find("documents:read", "/gateway") is None
    assert admin.can_confer_action("gateway:clients:read")


def test_grant_rights_are_needed_to_confer() -> None:
    g = grants(
        ([Permission("documents:read")], ["/users/1"]),
        ([Permission("documents:write", grant=True)], ["/users/1"]),
    )
    assert g.find("documents:read", "/users/1", need_grant=True) is None
    assert g.find("documents:write", "/users/1/x", need_grant=True) is not None
    assert not g.can_confer_action("documents:read")
