"""Recovery codes: 64 random bits shown as xxxx-xxxx-xxxx-xxxx, stored as salted hashes.

Each code carries 64 bits from the CSPRNG, so a fast salted hash is enough:
unlike a password it cannot be found in a dictionary, and checking a code
against ten stored hashes stays well under a millisecond (NIST 800-63B
§4.2.1.1 asks for salted hashes, SECURITY.md 14).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

COUNT = 10
_HEX16 = re.compile(r"^[0-9a-f]{16}\Z")


def generate_codes(count: int = COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = secrets.token_hex(8)
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize(code: object) -> str | None:
    """Either case, with or without dashes; anything else is not a recovery code."""
    if not isinstance(code, str):
        return None
    compact = code.replace("-", "").lower()
    return compact if _HEX16.match(compact) else None


def hash_code(code: str, salt: str | None = None) -> str:
    compact = normalize(code)
    if compact is None:
        raise ValueError("not a recovery code")
    salt = salt if salt is not None else secrets.token_hex(16)
    digest = hashlib.sha256(bytes.fromhex(salt) + compact.encode()).hexdigest()
    return f"{salt}${digest}"


def matching_hash(code: str, hashes: Iterable[str]) -> str | None:
    """The stored hash this code matches, comparing every candidate in constant time."""
    found = None
    for stored in hashes:
        salt, _, _ = stored.partition("$")
        if hmac.compare_digest(hash_code(code, salt), stored):
            found = stored
    return found
