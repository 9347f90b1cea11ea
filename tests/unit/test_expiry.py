"""Parsing a credential's expiry from an admin request (issue 14)."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.identity.expiry import MAX_SECONDS, expiry_from
from gateway.models import AccessKey, epoch_of

NOW = 1_800_000_000.0


def test_expires_in_and_at_give_one_stored_format() -> None:
    assert expiry_from({}, NOW) is None
    assert expiry_from({"expiresIn": None}, NOW) is None
    stored = expiry_from({"expiresIn": 90}, NOW)
    assert stored == "2027-01-15T08:01:30.000Z" and epoch_of(stored) == NOW + 90
    assert expiry_from({"expiresAt": "2027-01-15T09:05:00+01:00"}, NOW) == "2027-01-15T08:05:00.000Z"


@pytest.mark.parametrize(
    "body",
    [
        {"expiresIn": 0},
        {"expiresIn": -5},
        {"expiresIn": 1.5},
        {"expiresIn": MAX_SECONDS + 1},
        {"expiresAt": 5},
        {"expiresAt": "2027-01-15"},  # a date alone is midnight without a zone
        {"expiresAt": "2020-01-01T00:00:00Z"},
        {"expiresAt": "2999-01-01T00:00:00Z"},
        {"expiresIn": 5, "expiresAt": "2027-01-15T09:00:00Z"},
    ],
)
def test_bad_expiry_is_a_400_naming_the_field(body: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        expiry_from(body, NOW)
    assert caught.value.description.split(":")[0] in body


def test_expired_is_measured_against_the_given_instant() -> None:
    key = AccessKey("acc_x", "sc_x", b"k", "2027-01-15T08:00:00.000Z", expires_at="2027-01-15T08:01:30.000Z")
    assert not key.expired(NOW + 89.9)
    assert key.expired(NOW + 90)
    assert not AccessKey("acc_y", "sc_x", b"k", "x").expired(NOW * 10)
