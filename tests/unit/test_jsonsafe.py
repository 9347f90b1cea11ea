"""Strict JSON for what strangers send (issue 9, defect 2)."""

from __future__ import annotations

import pytest

from gateway.jsonsafe import JsonError, loads


def test_ordinary_json_reads_as_json() -> None:
    assert loads(b'{"a": [1, 2.5, "x]]]", {"b": null}], "c": true}') == {
        "a": [1, 2.5, "x]]]", {"b": None}],
        "c": True,
    }


def test_depth_is_counted_outside_strings() -> None:
    assert loads("[" * 32 + "]" * 32) is not None
    assert loads('["' + "[" * 100 + '"]') == ["[" * 100]
    with pytest.raises(JsonError):
        loads("[" * 33 + "]" * 33)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":1,"a":2}', "1" * 41, "1e999", "-Infinity", "NaN", b"\xff"],
)
def test_pathological_json_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)
