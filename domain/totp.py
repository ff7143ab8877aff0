"""TOTP (RFC 6238) over HOTP (RFC 4226), with the checks RFC 6238 §5 asks for."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyotp

# RFC 6238 defaults that every authenticator app honours; Google
# Authenticator ignores the algorithm, digits and period parameters.
DIGITS = 6
PERIOD = 30
# RFC 6238 §5.2: accept the current step and at most one step either side.
WINDOW = 1
CODE_PATTERN = re.compile(r"^[0-9]{6}\Z")


def is_well_formed(code: object) -> bool:
    """Exactly six ASCII digits, checked before anything else.

    pyotp NFKC-normalises its input, so full-width digits or a code with
    spaces would otherwise reach the comparison.
    """
    return isinstance(code, str) and CODE_PATTERN.match(code) is not None


def time_step(at: datetime, period: int = PERIOD) -> int:
    """T = floor((unix time - T0) / X) with T0 = 0 (RFC 6238 §4.2)."""
    return int(at.timestamp()) // period


def hotp(
    secret: str, counter: int, digits: int = DIGITS, digest: Callable[..., Any] = hashlib.sha1
) -> str:
    return pyotp.HOTP(secret, digits=digits, digest=digest).at(counter)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the window whose code equals ``code``, else None.

    Only the server's clock counts; the caller validated the code's form.
    Every candidate is compared in constant time.
    """
    current = time_step(now)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step), code):
            found = step
    return found


def random_secret() -> str:
    """160 bits from the CSPRNG, Base32 without padding (RFC 4226 R6)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """Key Uri Format: label ISSUER:ACCOUNT, issuer parameter equal to the prefix."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )
