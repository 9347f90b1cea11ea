"""Dependencies point one way (gateway/__init__.py draws the layers): every import inside the
package, lazy ones included, goes to the importer's own layer or below, and no two top-level
parts import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent

# Top-level module or package → layer. A part not listed here (someone's new package) is not
# checked until it is added.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "models",
            "errors",
            "units",
            "crypto",
            "cache",
            "paths",
            "config",
            "presented",
            "metrics",
            "metrics_history",
            "vault_models",
            "quota",
            "config_schema",
            "background",
            "group",
            "jsonsafe",
            "jws",
            "logs",
        ),
        0,
    ),
    "store": 1,
    "policy": 2,
    "identity": 3,
    "vault": 3,
    "usage": 3,
    "pipeline": 4,
    "runtime": 5,
    **dict.fromkeys(("proxy", "decisions", "admin", "oauth", "web"), 6),
    "console": 7,  # built on the admin API's service layer (admin.actions)
    "http1": 7,  # the public listener's server, under gateway.server
    "server": 8,
    "supervisor": 8,
    "cli": 9,
    "__main__": 10,
}
# The library for callers and upstreams stands apart: the foundation and itself only.
CLIENT_MAY_IMPORT = {"client", "crypto", "errors"}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "gateway" and len(parts) > 1 else None


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT).with_suffix("")
        own = relative.parts[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names if node.module == "gateway"
                ]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                part = _part(name)
                if part is not None and part != own:
                    found.setdefault(own, set()).add(part)
    return found


def test_imports_point_down() -> None:
    upward = [
        f"{importer} (layer {LAYERS[importer]}) imports {imported} (layer {LAYERS[imported]})"
        for importer, targets in _imports().items()
        for imported in targets
        if importer in LAYERS and imported in LAYERS and LAYERS[imported] > LAYERS[importer]
    ]
    assert upward == []


def test_no_two_parts_import_each_other() -> None:
    graph = _imports()
    cycles = sorted(
        f"{a} <-> {b}" for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, set())
    )
    assert cycles == []


def test_the_client_library_stands_apart() -> None:
    assert _imports().get("client", set()) <= CLIENT_MAY_IMPORT


def test_no_two_classes_share_a_name() -> None:
    seen: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
