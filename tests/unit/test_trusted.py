"""Trusted identity entries as values: validation, the unique-claim rule, `*` within one
segment, matching and the credential id of exchanged tokens."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.identity.trusted import (
    TrustedIndex,
    check_not_own_issuer,
    compile_condition,
    credential_id,
    identity_from,
    parse_credential_id,
)

CLIENT = "sc_" + "a" * 22


def entry(**body: Any) -> Any:
    return identity_from({"issuer": "https://issuer.example", "audience": "aud", "clientId": CLIENT,
                          "conditions": {"sub": "repo:acme/deploy:ref:refs/heads/main"}, **body})


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/deploy:ref:refs/heads/main", True),
        ("repo:acme/*:ref:refs/heads/main", "repo:acme/a/b:ref:refs/heads/main", False),  # never across /
        ("repo:acme/deploy:*", "repo:acme/deploy:pull_request", True),
        ("repo:acme/deploy:*", "repo:acme/deploy:ref:refs/heads/main", False),  # never across :
        ("system:serviceaccount:ns:*", "system:serviceaccount:ns:", False),  # at least one character
        ("a.b*", "a.bc", True),
        ("a.b*", "aXbc", False),  # the rest is literal, `.` included
    ],
)
def test_wildcard_stays_within_one_segment(pattern: str, value: str, matches: bool) -> None:
    compiled = compile_condition(pattern)
    assert compiled is not None and (compiled.fullmatch(value) is not None) is matches


def test_exact_values_compile_to_none() -> None:
    assert compile_condition("repo:acme/deploy:ref:refs/heads/main") is None


@pytest.mark.parametrize(
    "conditions",
    [{}, {"sub": "*"}, {"sub": "*:*"}, {"sub": "*/*:*"}, {"aud": "x"}, {"repository": "acme/deploy"}],
)
def test_generic_entries_must_pin_sub(conditions: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest, match=r"^conditions:"):
        entry(conditions=conditions)


def test_presets_name_their_unique_claims() -> None:
    github = entry(preset="github-actions", issuer=None, conditions={"repository": "acme/deploy"})
    assert github.issuer == "https://token.actions.githubusercontent.com"
    with pytest.raises(InvalidRequest, match=r"^conditions:"):
        entry(preset="github-actions", issuer=None, conditions={"repository_owner": "acme"})
    gitlab = entry(preset="gitlab", issuer=None, conditions={"project_path": "acme/deploy"})
    assert gitlab.issuer == "https://gitlab.com"
    with pytest.raises(InvalidRequest, match=r"^issuer:"):
        entry(preset="kubernetes", issuer=None, conditions={"sub": "system:serviceaccount:ns:sa"})


def test_fields_a_caller_may_not_set() -> None:
    made = entry(createdTime="1999", revision=7, source="config")
    assert made.revision == 1 and made.source == "api" and made.created_at != "1999"
    replaced = identity_from({"issuer": "https://issuer.example", "audience": "aud2", "clientId": CLIENT,
                              "conditions": {"sub": "x"}}, made.identity_id, previous=made)
    assert replaced.revision == 2 and replaced.created_at == made.created_at


def test_index_matches_audience_and_every_condition() -> None:
    a = entry(identityId="a", conditions={"sub": "repo:acme/*:ref:refs/heads/main", "ref_type": "branch"})
    b = entry(identityId="b", audience="other", conditions={"sub": "repo:acme/deploy:ref:refs/heads/main"})
    index = TrustedIndex([a, b])
    claims = {"sub": "repo:acme/deploy:ref:refs/heads/main", "ref_type": "branch"}
    assert index.match("https://issuer.example", ["aud"], claims) == a
    assert index.match("https://issuer.example", ["other", "x"], claims) == b
    assert index.match("https://issuer.example", ["aud"], {**claims, "ref_type": "tag"}) is None
    assert index.match("https://issuer.example", ["aud"], {**claims, "ref_type": ["branch"]}) is None
    assert index.match("https://elsewhere.example", ["aud"], claims) is None
    assert index.trusts("https://issuer.example") and not index.trusts(None)


def test_credential_ids_round_trip() -> None:
    made = entry(identityId="deploy.main")
    assert parse_credential_id(credential_id(made)) == ("deploy.main", 1)
    assert parse_credential_id("acc_x") is None and parse_credential_id("identity:x@y") is None


def test_own_issuers_refused() -> None:
    own = ("https://gw.example", "https://admin.example/base")
    for issuer in ("https://gw.example", f"https://admin.example/base/v1/clients/{CLIENT}"):
        with pytest.raises(InvalidRequest, match=r"^issuer:"):
            check_not_own_issuer(issuer, own)
    check_not_own_issuer("https://gw.example/realms/ci", own)
