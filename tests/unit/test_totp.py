"""TOTP as RFC 6238 and RFC 4226 define it, and the checks RFC 6238 §5 asks for."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from domain.totp import (
    hotp,
    is_well_formed,
    matching_step,
    provisioning_uri,
    random_secret,
    time_step,
)

# RFC 6238 Appendix B: each algorithm has its own seed of "1234567890" repeated.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
RFC6238_APPENDIX_B = [
    (59, "sha1", "94287082"),
    (59, "sha256", "46119246"),
    (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"),
    (1111111109, "sha256", "68084774"),
    (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"),
    (1111111111, "sha256", "67062674"),
    (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"),
    (1234567890, "sha256", "91819424"),
    (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"),
    (2000000000, "sha256", "90698825"),
    (2000000000, "sha512", "38618901"),
    # Beyond 2^32 seconds: the counter must not be truncated to 32 bits.
    (20000000000, "sha1", "65353130"),
    (20000000000, "sha256", "77737706"),
    (20000000000, "sha512", "47863826"),
]
RFC4226_APPENDIX_D = [
    "755224", "287082", "359152", "969429", "338314",
    "254676", "287922", "162583", "399871", "520489",
]  # fmt: skip


def b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode()


@pytest.mark.parametrize(("unix_time", "algorithm", "expected"), RFC6238_APPENDIX_B)
def test_reproduces_rfc6238_appendix_b(unix_time: int, algorithm: str, expected: str) -> None:
    at = datetime.fromtimestamp(unix_time, UTC)

    code = hotp(b32(SEEDS[algorithm]), time_step(at), digits=8, digest=DIGESTS[algorithm])

    assert code == expected


@pytest.mark.parametrize(("count", "expected"), list(enumerate(RFC4226_APPENDIX_D)))
def test_reproduces_rfc4226_appendix_d(count: int, expected: str) -> None:
    assert hotp(b32(SEEDS["sha1"]), count) == expected


def test_time_steps_are_thirty_seconds_from_the_unix_epoch() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    assert time_step(epoch) == 0
    assert time_step(epoch + timedelta(seconds=29)) == 0
    assert time_step(epoch + timedelta(seconds=30)) == 1
    assert time_step(datetime.fromtimestamp(20000000000, UTC)) == 666666666


NOW = datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC)


def full_width(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


def arabic_indic(digits: str) -> str:
    return "".join(chr(0x0660 + int(d)) for d in digits)


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_accepts_the_current_step_and_one_either_side_and_no_more(
    offset: int, accepted: bool
) -> None:
    secret = random_secret()
    code = pyotp.TOTP(secret).at(NOW + timedelta(seconds=30 * offset))

    found = matching_step(secret, code, NOW)

    assert found == (time_step(NOW) + offset if accepted else None)


@pytest.mark.parametrize("code", ["123456", "000000", "999999"])
def test_six_ascii_digits_are_well_formed(code: str) -> None:
    assert is_well_formed(code)


@pytest.mark.parametrize(
    "code",
    [
        full_width("123456"),  # pyotp's NFKC would turn them into 123456
        arabic_indic("123456"),  # \d would match them, [0-9] does not
        "123 456",
        " 123456",
        "123456 ",
        "123456\n",
        "12345",
        "1234567",
        "",
        "12345a",
        123456,
        None,
        b"123456",
        ["123456"],
    ],
)
def test_anything_but_six_ascii_digits_is_malformed(code: object) -> None:
    assert not is_well_formed(code)


def test_secrets_are_160_random_bits_in_base32_without_padding() -> None:
    secrets = [random_secret() for _ in range(1000)]

    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20
    assert len(set(secrets)) == len(secrets)


def test_provisioning_uri_follows_the_key_uri_format() -> None:
    secret = random_secret()

    uri = urlparse(provisioning_uri(secret, "bob", "BizzStream Aero"))

    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/BizzStream Aero:bob"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert "=" not in query["secret"][0]
    assert query["issuer"] == ["BizzStream Aero"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
