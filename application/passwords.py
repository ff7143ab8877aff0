"""Password rules (SECURITY.md 7-9): argon2id hashes and NIST 800-63B rev 4 strength checks."""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

from domain.errors import WeakPasswordError

MIN_LENGTH = 8
MAX_LENGTH = 128


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from leaked corpora.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.casefold() for p in FREQUENCY_LISTS["passwords"])


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFC", password)


# Names shorter than this are refused only as the whole password: a two-letter
# slug or username would otherwise be found inside many good passphrases.
MIN_CONTAINED = 3


def _compared(text: str) -> str:
    # NFKC folds compatibility forms (full-width "password123", the ligature U+FB01) into what they
    # look like, so a variant of a listed password is refused like the password.
    return unicodedata.normalize("NFKC", text).casefold()


def check_strength(password: str, username: str, slug: str, issuer: str) -> str:
    """The NFC-normalised password, or WeakPasswordError saying why.

    No composition rules and no truncation: length, the common list and
    context-specific words (the username, the environment's slug and the
    issuer the authenticator app shows) are what 800-63B rev 4 asks for.
    The checks compare NFKC, casefolded; the password kept is NFC, as typed.
    """
    password = normalize_password(password)
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"password must be at most {MAX_LENGTH} characters")
    compared = _compared(password)
    if len(set(compared)) == 1:
        raise WeakPasswordError("password must not be one character repeated")
    for word, name in (
        (username, "the username"),
        (slug, "the environment's slug"),
        (issuer, "the issuer"),
    ):
        word = _compared(word)
        if compared == word or (len(word) >= MIN_CONTAINED and word in compared):
            raise WeakPasswordError(f"password must not contain {name}")
    if compared in _common_passwords():
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
    """argon2id hashing on ``concurrency`` threads of its own (the cores, by default).

    Hashing is CPU- and memory-bound: more at once than there are cores only
    time-slices them, while each holds 19 MiB (m = 19456 KiB), so a burst of
    logins on the server's thread pool would multiply the memory without adding
    throughput (docs/benchmarks.md, benchmark 6). The hashes run on the
    hasher's own threads rather than on whichever request thread asked: glibc
    keeps a freed 19 MiB block in the malloc arena of the thread that used it,
    and few threads touch few arenas, so a process keeps one block per hashing
    thread instead of one per arena its many request threads were given. The
    C call releases the GIL, so these threads hash on every core while the
    caller waits. The parameters are unchanged.
    """

    def __init__(
        self, parameters: Argon2Parameters | None = None, concurrency: int | None = None
    ) -> None:
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="argon2id")
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
        return self._threads.submit(self._hasher.hash, normalize_password(password)).result()

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._threads.submit(
                self._hasher.verify, password_hash, normalize_password(password)
            ).result()
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
