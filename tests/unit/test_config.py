from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

GOOD = """
public_url: http://127.0.0.1:8080/
listen: 127.0.0.1:8080
admin: {listen: "[::1]:8081", public_url: http://127.0.0.1:8081}
store: sqlite:///./data/gateway.db
account_id: acme
master_key_file: ./data/master.key
policies: [policies/]
limits: {max_body_bytes: 10MiB}
reload: {interval: 250ms}
trusted_proxies: [10.0.0.0/8, "::1"]
"""


def test_example_config_loads() -> None:
    config = load_config(Path(__file__).parents[2] / "config.example.yaml", environ={})
    assert config.listen.port == 8080 and config.store.scheme == "sqlite"


def test_values_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    c = load_config(tmp_path / "c.yaml", environ={})
    assert c.public_url == "http://127.0.0.1:8080"
    assert (c.admin_listen.host, c.admin_listen.port) == ("::1", 8081)
    assert c.store.path == tmp_path / "data" / "gateway.db"
    assert c.master_key_file == tmp_path / "data" / "master.key"
    assert c.policies == (tmp_path / "policies",)
    assert c.limits.max_body_bytes == 10 * 1024 * 1024
    assert c.reload_interval == 0.25
    assert len(c.trusted_proxies) == 2


def test_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(GOOD)
    c = load_config(
        tmp_path / "c.yaml",
        environ={
            "GATEWAY_LISTEN": "0.0.0.0:9000",
            "GATEWAY_STORE": "postgresql://postgres@127.0.0.1:5432/test",
        },
    )
    assert str(c.listen) == "0.0.0.0:9000"
    assert c.store.scheme == "postgresql"


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("account_id", "account_id: required key is missing"),
        ("public_url", "public_url: required key is missing"),
        ("policies", "policies: required key is missing"),
        ("master_key_file", "master_key_file: required key is missing (or set GATEWAY_MASTER_KEY)"),
    ],
)
def test_missing_keys_are_named(tmp_path: Path, drop: str, message: str) -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith(drop + ":"))
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml", environ={})
    assert f"{tmp_path / 'c.yaml'}: {message}" in str(info.value)


def test_master_key_may_come_from_the_environment(tmp_path: Path) -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith("master_key_file"))
    (tmp_path / "c.yaml").write_text(text)
    assert load_config(tmp_path / "c.yaml", environ={"GATEWAY_MASTER_KEY": "x" * 44}).master_key_file is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("listen: 8080", "listen: expected HOST:PORT"),
        ("account_id: acme-corp", "account_id: expected 1 to 40 letters and digits"),
        ("store: mysql://x", "store: expected sqlite:///PATH or postgresql://"),
        ("workers: 0", "workers: expected a whole number of at least 1"),
        ("lisen: 127.0.0.1:1", "lisen: unknown key"),
        ("limits: {max_body_bytes: lots}", "limits.max_body_bytes: expected a size"),
        ("reload: {interval: soon}", "reload.interval: expected a duration"),
        ("trusted_proxies: [nonsense]", "trusted_proxies: expected a list of addresses or CIDR ranges"),
        ("public_url: ftp://x", "public_url: expected an http:// or https:// URL"),
    ],
)
def test_wrong_values_are_named(tmp_path: Path, line: str, message: str) -> None:
    key = line.split(":")[0]
    text = "\n".join(x for x in GOOD.splitlines() if not x.startswith(key + ":")) + "\n" + line + "\n"
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml", environ={})
    assert message in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.yaml", environ={})
    (tmp_path / "bad.yaml").write_text("listen: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        load_config(tmp_path / "bad.yaml", environ={})


def test_every_key_is_declared_once_with_its_default(tmp_path: Path) -> None:
    """The schema states each default once (on its dataclass field): a config that sets nothing
    optional gets exactly those, and every declared key is one the loader accepts (issue 9)."""
    from dataclasses import fields

    from gateway.config import _SECTIONS, Config
    from gateway.config_schema import declared

    minimal = "\n".join(
        line for line in GOOD.splitlines() if not line.startswith(("limits", "reload", "trusted"))
    )
    (tmp_path / "c.yaml").write_text(minimal)
    c = load_config(tmp_path / "c.yaml", environ={})
    for name, cls in _SECTIONS.items():
        assert getattr(c, name) == cls(), name
        assert declared(cls) == list(fields(cls)), f"{name}: every field is a declared key"
    for f in declared(Config):
        assert getattr(c, f.name) == f.default, f.name
    # Every declared key is accepted where the schema says it lives.
    for name, cls in _SECTIONS.items():
        for f in declared(cls):
            (tmp_path / "c.yaml").write_text(minimal + f"\n{name}: {{{f.name}: null}}\n")
            load_config(tmp_path / "c.yaml", environ={})
