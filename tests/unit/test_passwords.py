"""Passwords: argon2id with OWASP's parameters, NIST 800-63B rev 4 rules (SECURITY.md 7-8)."""

from __future__ import annotations

import threading
import time

import pytest

from application.passwords import Argon2Hasher, Argon2Parameters, check_strength
from domain.errors import WeakPasswordError

COMPOSED = "caf\u00e9 au lait, s'il vous pla\u00eet"
DECOMPOSED = "cafe\u0301 au lait, s'il vous plai\u0302t"


@pytest.fixture(scope="module")
def hasher() -> Argon2Hasher:
    return Argon2Hasher()


def test_hashes_with_argon2id_and_stores_owasps_parameters(hasher: Argon2Hasher) -> None:
    password_hash = hasher.hash("correct horse battery")

    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(password_hash, "correct horse battery")


def test_the_same_password_hashes_differently_each_time(hasher: Argon2Hasher) -> None:
    assert hasher.hash("correct horse battery") != hasher.hash("correct horse battery")


def test_composed_and_decomposed_accents_are_the_same_password(hasher: Argon2Hasher) -> None:
    assert COMPOSED != DECOMPOSED

    assert hasher.verify(hasher.hash(COMPOSED), DECOMPOSED)
    assert hasher.verify(hasher.hash(DECOMPOSED), COMPOSED)


def test_the_whole_password_counts_not_a_prefix(hasher: Argon2Hasher) -> None:
    password = "x" * 99 + "a"

    assert not hasher.verify(hasher.hash(password), "x" * 99 + "b")
    assert not hasher.verify(hasher.hash("y" * 128), "y" * 127)


def test_a_malformed_stored_hash_verifies_nothing(hasher: Argon2Hasher) -> None:
    assert not hasher.verify("not an argon2 hash", "correct horse battery")


def test_a_hash_made_with_other_parameters_needs_a_rehash(hasher: Argon2Hasher) -> None:
    stronger = Argon2Hasher(Argon2Parameters(iterations=3))
    old_hash = hasher.hash("correct horse battery")

    assert stronger.needs_rehash(old_hash)
    assert not hasher.needs_rehash(old_hash)
    assert stronger.verify(old_hash, "correct horse battery")


@pytest.mark.parametrize(
    "parameters", [{"memory_kib": 19455}, {"iterations": 1}, {"parallelism": 0}]
)
def test_parameters_may_not_go_below_owasps_minimum(parameters: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="minimum"):
        Argon2Parameters(**parameters)


def strength(password: str, username: str = "bob") -> str:
    return check_strength(password, username, "acme", "BizzStream Aero")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("seven!!", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password123", "commonly used"),
        ("qwertyuiop", "commonly used"),
        ("PASSWORD123", "commonly used"),
        ("Bob_the_Builder", "the username"),
    ],
)
def test_refuses_weak_passwords_saying_why(password: str, reason: str) -> None:
    with pytest.raises(WeakPasswordError, match=reason) as error:
        strength(password, "bob_the_builder")
    assert error.value.code == "weak_password"


@pytest.mark.parametrize(
    "password",
    [
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11\uff12\uff13",  # full width
        "\uff31\uff37\uff25\uff32\uff34\uff39\uff35\uff29\uff2f\uff30",
    ],
)
def test_compatibility_forms_of_a_common_password_are_refused_like_it(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="commonly used"):
        strength(password)


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "\u00e9" * 9, "aAaAaAaAaA", "\uff41a" * 5])
def test_refuses_one_character_repeated(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="one character repeated"):
        strength(password)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("my name is Bob_the_Builder!", "the username"),
        ("xx\uff42\uff4f\uff42_the_builder", "the username"),
        ("welcome to ACME 2026", "the environment's slug"),
        ("bizzstream aero 2026!", "the issuer"),
        ("BIZZSTREAM AERO", "the issuer"),
    ],
)
def test_refuses_passwords_containing_the_username_slug_or_issuer(
    password: str, reason: str
) -> None:
    with pytest.raises(WeakPasswordError, match=reason) as error:
        strength(password, "bob_the_builder")
    assert error.value.code == "weak_password"


def test_a_name_of_two_characters_may_occur_in_a_password() -> None:
    assert check_strength("qa engineer at work", "qa", "qa", "QA") == "qa engineer at work"
    with pytest.raises(WeakPasswordError, match="the environment's slug"):
        check_strength("ab" * 4, "bob", "abababab", "Aero")


def test_length_counts_characters_after_nfc() -> None:
    # Eight code points decomposed, seven characters composed.
    with pytest.raises(WeakPasswordError, match="at least 8"):
        strength("abcdefe\u0301")


@pytest.mark.parametrize(
    "password", ["x7#kL!q2", "correct horse battery", "pässwörd-ünïcode", "z" * 127 + "y"]
)
def test_accepts_long_enough_uncommon_passwords_without_composition_rules(password: str) -> None:
    assert strength(password) == password


def test_returns_the_nfc_form_of_the_password_not_the_nfkc_one() -> None:
    assert strength(DECOMPOSED) == COMPOSED
    assert strength("\ufb01ne tuning 2026") == "\ufb01ne tuning 2026"


def test_hashes_run_on_the_hashers_own_threads_whoever_asks() -> None:
    hasher = Argon2Hasher(concurrency=2)
    names: set[str] = set()
    real = hasher._hasher

    class Watching:
        def hash(self, password: str) -> str:
            names.add(threading.current_thread().name)
            return real.hash(password)

    hasher._hasher = Watching()  # type: ignore[assignment]
    callers = [threading.Thread(target=hasher.hash, args=("a long password",)) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    # Eight callers, at most two threads that ever held argon2id's 19 MiB block.
    assert 1 <= len(names) <= 2
    assert all(name.startswith("argon2id") for name in names)


def test_no_more_hashes_run_at_once_than_the_hasher_allows() -> None:
    hasher = Argon2Hasher(concurrency=2)
    running = 0
    most = 0
    lock = threading.Lock()
    # The argon2 hasher inside is swapped for a watching one: the limit must hold around
    # the real computation, and the product has no reason to let it be replaced.
    release = threading.Event()
    real = hasher._hasher

    class Watching:
        """Each hash holds its slot until the test releases them all."""

        def hash(self, password: str) -> str:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            release.wait(timeout=60)
            with lock:
                running -= 1
            return real.hash(password)

    hasher._hasher = Watching()  # type: ignore[assignment]
    threads = [threading.Thread(target=hasher.hash, args=("a long password",)) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while most < 2 and time.monotonic() < deadline:  # two take their slots, however slowly
        time.sleep(0.01)
    time.sleep(0.2)  # room for a third to enter, were the bound broken
    seen = most
    release.set()
    for thread in threads:
        thread.join()

    assert seen == 2
    assert most == 2
