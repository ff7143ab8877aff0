"""Recovery codes: 64 random bits each, shown once, stored as salted hashes (SECURITY.md 14)."""

from __future__ import annotations

import re

import pytest

from domain.recovery import COUNT, generate_codes, hash_code, matching_hash, normalize


def test_a_set_is_ten_distinct_codes_of_sixteen_hex_digits_in_groups_of_four() -> None:
    codes = generate_codes()

    assert len(codes) == COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", code)
        assert len(bytes.fromhex(code.replace("-", ""))) * 8 == 64


def test_codes_come_from_a_csprng_and_do_not_repeat() -> None:
    codes = [code for _ in range(200) for code in generate_codes()]

    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    "typed", ["0a1b-2c3d-4e5f-6789", "0A1B-2C3D-4E5F-6789", "0a1b2c3d4e5f6789", "0A1B2C3D4E5F6789"]
)
def test_a_code_is_accepted_in_either_case_with_or_without_dashes(typed: str) -> None:
    stored = [hash_code("0a1b-2c3d-4e5f-6789"), hash_code("ffff-ffff-ffff-ffff")]

    assert matching_hash(typed, stored) == stored[0]


@pytest.mark.parametrize(
    "typed",
    [
        "0a1b-2c3d-4e5f-678",
        "0a1b-2c3d-4e5f-67890",
        "0a1b 2c3d 4e5f 6789",
        "0a1b-2c3d-4e5f-678g",
        42,
    ],
)
def test_anything_else_is_not_a_recovery_code(typed: object) -> None:
    assert normalize(typed) is None


def test_hashes_are_salted_so_one_code_hashes_differently_each_time() -> None:
    first, second = hash_code("0a1b-2c3d-4e5f-6789"), hash_code("0a1b-2c3d-4e5f-6789")

    assert first != second
    assert first.split("$")[0] != second.split("$")[0]
    assert "0a1b" not in first.split("$")[1]


def test_a_code_matches_no_hash_of_another_code() -> None:
    stored = [hash_code(c) for c in generate_codes()]

    assert matching_hash("0a1b-2c3d-4e5f-6789", stored) is None
