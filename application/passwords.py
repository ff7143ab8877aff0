"""Password rules (SECURITY.md 7-9): argon2id hashes and NIST 800-63B rev 4 strength checks."""

from __future__ import annotations

import os
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

from domain.errors import WeakPasswordError
from domain.rules import username_key

MIN_LENGTH = 8
MAX_LENGTH = 128


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from leaked corpora.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.casefold() for p in FREQUENCY_LISTS["passwords"])


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def check_strength(password: str, username: str) -> str:
    """The NFC-normalised password, or WeakPasswordError saying why.

    No composition rules and no truncation: length, the common list and the
    username are what 800-63B rev 4 asks for.
    """
    password = normalize_password(password)
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"password must be at most {MAX_LENGTH} characters")
    if password.casefold() == username_key(username):
        raise WeakPasswordError("password must not equal the username")
    if password.casefold() in _common_passwords():
        raise WeakPasswordError("password is one of the most commonly used passwords")
    return password


@dataclass(frozen=True)
class Argon2Parameters:
    """OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1 (see SECURITY.md 7 for why)."""

    memory_kib: int = 19456
    iterations: int = 2
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.memory_kib < 19456 or self.iterations < 2 or self.parallelism < 1:
            raise ValueError("argon2id parameters may only be raised above OWASP's minimum")


class Argon2Hasher:
    """argon2id hashing, at most ``concurrency`` computations at once in this process.

    Hashing is CPU- and memory-bound: more at once than there are cores only
    time-slices them, while each holds 19 MiB (m = 19456 KiB), so a burst of
    logins on the server's thread pool would multiply the memory without adding
    throughput (docs/benchmarks.md, benchmark 6). The parameters are unchanged.
    """

    def __init__(
        self, parameters: Argon2Parameters | None = None, concurrency: int | None = None
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(1, concurrency or os.cpu_count() or 1))
        p = parameters or Argon2Parameters()
        self._hasher = PasswordHasher(
            time_cost=p.iterations,
            memory_cost=p.memory_kib,
            parallelism=p.parallelism,
            type=Type.ID,
        )
        # Unknown users cost one verification too, so timing does not tell
        # whether a username exists (SECURITY.md 9).
        self._dummy = self._hasher.hash("aero-auth dummy password for timing")

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(normalize_password(password))

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            with self._slots:
                return self._hasher.verify(password_hash, normalize_password(password))
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
