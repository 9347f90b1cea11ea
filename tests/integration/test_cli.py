"""The `gateway` command as a user runs it (contract §10): `policy check` names the file, the
route and the field of every problem and exits 1; `serve` refuses a broken config at start and
names the key. Every command runs in a scratch folder without a config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.processes import PROJECT_DIR, clean_env, free_port, write_config

GOOD = """\
upstreams:
  docs:
    url: http://127.0.0.1:9001
    timeout: 5s
routes:
  - {id: health, match: GET /health, upstream: docs, auth: none}
  - id: read-document
    match: "GET /v1/users/{userId}/documents/{docId}"
    upstream: docs
    permission: documents:read
    resource: "/users/{userId}/documents/{docId}"
  - {id: create-event, match: POST /v1/events, upstream: docs, scopes: [event.create]}
"""

# (policy text, route id, the problem's text after "FILE: route ID: ")
BROKEN = [
    (
        "- {id: r-upstream, match: GET /a, upstream: nowhere, auth: none}",
        "r-upstream",
        "upstream: no upstream named 'nowhere'",
    ),
    ("- {id: r-open, match: GET /b, upstream: docs}", "r-open", "auth: the route must require"),
    (
        "- {id: r-lower, match: get /c, upstream: docs, auth: none}",
        "r-lower",
        "match: method 'get' is not an upper-case HTTP method",
    ),
    (
        "- {id: r-field, match: GET /d, upstream: docs, auth: none, permisson: x}",
        "r-field",
        "permisson: unknown field",
    ),
    (
        "- {id: r-resource, match: 'GET /e/{x}', upstream: docs, permission: e:read, resource: '/e/{y}'}",
        "r-resource",
        "resource: {y} is not a parameter of the route's path",
    ),
    (
        "- {id: r-half, match: 'GET /f/{x}', upstream: docs, permission: f:read}",
        "r-half",
        "resource: required with permission",
    ),
    (
        "- {id: r-own, match: 'GET /oauth/token', upstream: docs, auth: none}",
        "r-own",
        "match: overlaps the gateway's own endpoint",
    ),
    (
        "- {id: r-rest, match: 'GET /g/{rest*}/h', upstream: docs, auth: none}",
        "r-rest",
        "match: {rest*} may only be the last segment",
    ),
    (
        "- {id: r-public-scopes, match: GET /i, upstream: docs, auth: none, scopes: [a]}",
        "r-public-scopes",
        "auth: an `auth: none` route cannot require",
    ),
]


def gateway(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def policy(tmp_path: Path, routes: str, name: str = "policy.yaml", upstreams: bool = True) -> Path:
    path = tmp_path / name
    head = "upstreams:\n  docs:\n    url: http://127.0.0.1:9001\n" if upstreams else ""
    path.write_text(head + "routes:\n  " + routes + "\n")
    return path


def test_policy_check_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    result = gateway("policy", "check", "good.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 route(s)" in result.stdout and "1 upstream(s)" in result.stdout
    assert result.stderr == ""


def test_policy_check_accepts_the_example_policy(tmp_path: Path) -> None:
    result = gateway("policy", "check", str(PROJECT_DIR / "policies"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("routes", "route_id", "problem"), BROKEN, ids=[b[1] for b in BROKEN])
def test_policy_check_names_file_route_and_field(
    tmp_path: Path, routes: str, route_id: str, problem: str
) -> None:
    file = policy(tmp_path, routes)
    result = gateway("policy", "check", str(file), cwd=tmp_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{file}: route {route_id}: {problem}") for line in lines), result.stderr


def test_policy_check_reports_every_problem_of_every_file(tmp_path: Path) -> None:
    first = policy(tmp_path, "\n  ".join(b[0] for b in BROKEN[:3]), "first.yaml")
    second = policy(tmp_path, "\n  ".join(b[0] for b in BROKEN[3:6]), "second.yaml", upstreams=False)
    result = gateway("policy", "check", str(first), str(second), cwd=tmp_path)
    assert result.returncode == 1
    for file, (_, route_id, problem) in [(first, b) for b in BROKEN[:3]] + [(second, b) for b in BROKEN[3:6]]:
        assert f"{file}: route {route_id}: {problem}" in result.stderr
    assert "6 problem(s)" in result.stderr


def test_policy_check_reports_ambiguous_routes_with_both_ids(tmp_path: Path) -> None:
    file = policy(
        tmp_path,
        "- {id: one, match: 'GET /a/{x}', upstream: docs, auth: none}\n"
        "  - {id: two, match: 'GET|POST /a/{y}', upstream: docs, auth: none}",
    )
    result = gateway("policy", "check", str(file), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{file}: route two: match:" in result.stderr
    assert "ambiguous with route one" in result.stderr


def test_policy_check_reports_yaml_syntax_errors_with_the_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("routes:\n  - id: a\n    match: [unclosed\n")
    result = gateway("policy", "check", str(file), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{file}: not valid YAML at line" in result.stderr


def test_policy_check_reports_a_missing_file(tmp_path: Path) -> None:
    result = gateway("policy", "check", str(tmp_path / "absent.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.yaml'}: no such file or folder" in result.stderr


def test_policy_check_json_on_broken_files(tmp_path: Path) -> None:
    file = policy(tmp_path, BROKEN[0][0])
    result = gateway("policy", "check", "--json", str(file), cwd=tmp_path)
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["ok"] is False
    assert output["problems"] == [f"{file}: route r-upstream: upstream: no upstream named 'nowhere'"]


def test_policy_check_json_on_good_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    result = gateway("policy", "check", "--json", "good.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["ok"] is True
    assert output["routes"] == 3 and output["upstreams"] == 1


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["policy", "--help"], ["policy", "check", "--help"]]
)
def test_help_on_every_command(tmp_path: Path, args: list[str]) -> None:
    result = gateway(*args, cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: gateway" in result.stdout


def config_without(tmp_path: Path, *keys: str, **changes: object) -> Path:
    """A valid config file (policy included) with `keys` removed and `changes` applied."""
    (tmp_path / "good.yaml").write_text(GOOD)
    path = write_config(tmp_path, port=free_port(), admin_port=free_port(), policies=[tmp_path / "good.yaml"])
    config = yaml.safe_load(path.read_text())
    for key in keys:
        if "." in key:
            outer, inner = key.split(".")
            del config[outer][inner]
        else:
            del config[key]
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("key", ["account_id", "listen", "public_url", "store", "policies", "admin.listen"])
def test_serve_refuses_a_config_missing_a_required_key(tmp_path: Path, key: str) -> None:
    config = config_without(tmp_path, key)
    result = gateway("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    assert f"{key}: required key is missing" in result.stderr
    assert str(config) in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"account_id": "not valid!"}, "account_id: expected 1 to 40 letters and digits"),
        ({"workers": 0}, "workers: expected a whole number of at least 1"),
        ({"listen": "nowhere"}, "listen: expected HOST:PORT"),
        ({"limits": {"max_body_bytes": "lots"}}, "limits.max_body_bytes: expected a size"),
        ({"colour": "blue"}, "colour: unknown key"),
    ],
)
def test_serve_refuses_a_wrong_value_and_names_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    config = config_without(tmp_path, **change)
    result = gateway("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    assert message in result.stderr


def test_serve_refuses_an_invalid_policy_and_names_file_and_route(tmp_path: Path) -> None:
    config = config_without(tmp_path)
    bad = policy(tmp_path, BROKEN[0][0], "bad.yaml")
    data = yaml.safe_load(config.read_text())
    data["policies"] = [str(bad)]
    config.write_text(yaml.safe_dump(data))
    result = gateway("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    assert f"{bad}: route r-upstream: upstream: no upstream named 'nowhere'" in result.stderr


def test_serve_reports_a_missing_config_file(tmp_path: Path) -> None:
    result = gateway("serve", "--config", str(tmp_path / "absent.yaml"), cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    assert str(tmp_path / "absent.yaml") in result.stderr
