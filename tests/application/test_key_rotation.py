"""Rotating the TOTP secrets' key: secrets stored under k1, then k2 configured first and
the secrets re-encrypted under it, then k1 removed, and users' codes work throughout.

On both stores (the ``settings`` fixture): each re-encryption is a new event, the
old events stay as they were, and the start's key check follows the secrets the
users hold now rather than history.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from application.clock import FixedClock
from application.secret_keys import (
    KeyUse,
    key_uses,
    rotate_environment,
    stored_secrets,
    usernames_by_environment,
)
from application.service import AeroAuth
from domain.credential import ALREADY_CURRENT, REENCRYPTED, UserCredential
from domain.totp import PERIOD
from interfaces.composition import build_application, build_container
from interfaces.keys import KeyConfigurationError
from interfaces.settings import Settings
from tests.application.helpers import (
    BOB,
    BOB_PASSWORD,
    CAROL,
    CAROL_PASSWORD,
    ENV,
    Enrolled,
    bob_registered,
    code_at,
    code_login,
    events_since,
    position,
    types,
)
from tests.application.test_conflicts import commit_acknowledged_late, other_writer_first

OLD = base64.b64encode(b"k" * 32).decode()  # the settings fixture's key, id k1
NEW = base64.b64encode(b"n" * 32).decode()
BOTH = f"k2:{NEW},k1:{OLD}"


def keyed(settings: Settings, secret_keys: str) -> Settings:
    return settings.model_copy(update={"secret_keys": SecretStr(secret_keys)})


@pytest.fixture
def configure(settings: Settings, clock: FixedClock) -> Iterator[Any]:
    """``configure("k2:...,k1:...")``: an application on the test's store with those keys,
    built as the composition root builds it."""
    built: list[AeroAuth] = []

    def build(secret_keys: str) -> AeroAuth:
        application = build_application(keyed(settings, secret_keys), clock=clock)
        built.append(application)
        return application

    yield build
    for application in built:
        application.close()


class Story:
    """acme: bob registered, carol half-way through registering, alice and dave without
    an authenticator; every secret under k1."""

    def __init__(self, app: AeroAuth, clock: FixedClock) -> None:
        self.bob: Enrolled = bob_registered(app, clock)
        app.create_user(ENV, CAROL, CAROL_PASSWORD, groups=["finance"])
        app.create_user(ENV, "dave", "he joined last of all")
        step = app.start_login(ENV, CAROL, CAROL_PASSWORD)
        assert step.challenge_id is not None
        self.carol_challenge = step.challenge_id
        self.carol_secret = app.start_registration(ENV, CAROL, step.challenge_id).secret


def uses(application: AeroAuth) -> list[tuple[str, bool, bool, int, int, int]]:
    def row(u: KeyUse) -> tuple[str, bool, bool, int, int, int]:
        return (u.key_id, u.configured, u.current, u.registered, u.pending, u.undecryptable)

    return [row(u) for u in key_uses(application)]


def rotate(application: AeroAuth) -> tuple[int, int, int, dict[str, str]]:
    users = usernames_by_environment(application)[ENV]
    report = rotate_environment(application, ENV, users)
    return (report.reencrypted, report.already_current, report.without_secret, report.not_rotated)


def test_a_rotation_reencrypts_under_the_new_key_and_the_old_key_can_then_go(
    app: AeroAuth, settings: Settings, clock: FixedClock, configure: Any
) -> None:
    story = Story(app, clock)
    history = events_since(app, 0)
    # Before the rotation the old key cannot go: the start refuses.
    with pytest.raises(KeyConfigurationError, match="k1, which are not configured"):
        build_container(keyed(settings, f"k2:{NEW}"), clock=clock).close()

    rotating = configure(BOTH)
    assert uses(rotating) == [("k2", True, True, 0, 0, 0), ("k1", True, False, 1, 1, 0)]
    before = position(app)

    assert rotate(rotating) == (2, 0, 2, {})

    new = events_since(app, before)
    assert types(new) == [UserCredential.TwoFactorSecretReencrypted] * 2
    assert {(e.stage, e.previous_key_id, e.key_id) for e in new} == {
        ("registered", "k1", "k2"),
        ("pending", "k1", "k2"),
    }
    assert all(e.encrypted_secret.startswith("k2.") for e in new)
    plain = (story.bob.secret, story.carol_secret, OLD, NEW)
    assert all(s not in e.encrypted_secret for e in new for s in plain)
    # History is not rewritten: every earlier event reads as it did.
    assert [vars(e) for e in events_since(app, 0)[: len(history)]] == [vars(e) for e in history]
    assert uses(rotating) == [("k2", True, True, 1, 1, 0), ("k1", True, False, 0, 0, 0)]
    # A code works while both keys are configured...
    clock.advance(seconds=PERIOD)
    rotating.verify_code(ENV, BOB, code_login(rotating), code_at(story.bob.secret, clock.now()))

    # ...and once the old key is gone: the service starts, bob's code and carol's
    # registration (started under k1) work.
    container = build_container(keyed(settings, f"k2:{NEW}"), clock=clock)
    try:
        only_new = container.application
        assert uses(only_new) == [("k2", True, True, 1, 1, 0)]
        clock.advance(seconds=PERIOD)
        challenge = code_login(only_new)
        only_new.verify_code(ENV, BOB, challenge, code_at(story.bob.secret, clock.now()))
        completed = only_new.confirm_registration(
            ENV, CAROL, story.carol_challenge, code_at(story.carol_secret, clock.now())
        )
        assert completed.recovery_codes is not None
        carol = only_new.user(ENV, CAROL).secret
        assert carol is not None and carol.startswith("k2.")
    finally:
        container.close()


def test_a_running_process_uses_the_reencrypted_secret_at_the_next_code_step(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    story = Story(app, clock)
    running = configure(BOTH)
    cached = running.user(ENV, BOB).secret  # in its aggregate cache, under k1
    assert cached is not None and cached.startswith("k1.")

    assert rotate(configure(BOTH))[0] == 2  # the operator's command, another process

    assert running.user(ENV, BOB).secret != cached
    clock.advance(seconds=PERIOD)
    running.verify_code(ENV, BOB, code_login(running), code_at(story.bob.secret, clock.now()))
    # What it holds now is the k2 ciphertext; k1's is left to the history.
    assert running.user(ENV, BOB).stored_secrets()["registered"].startswith("k2.")


def test_a_second_rotation_changes_nothing_and_says_so(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    Story(app, clock)
    rotating = configure(BOTH)
    assert rotate(rotating)[0] == 2
    before = position(app)

    assert rotate(rotating) == (0, 2, 2, {})
    assert rotate(configure(BOTH)) == (0, 2, 2, {})  # another process, a cold cache
    assert position(app) == before


def test_an_interrupted_rotation_finishes_when_run_again(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    Story(app, clock)
    rotating = configure(BOTH)
    # Interrupted after bob: only his command ran.
    assert rotating.reencrypt_secrets(ENV, BOB) == REENCRYPTED

    assert rotate(configure(BOTH)) == (1, 1, 2, {})
    assert {s.key_id for s in stored_secrets(app)} == {"k2"}


def test_a_secret_under_a_key_not_configured_is_reported_not_rotated(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    Story(app, clock)
    elsewhere = configure(f"k3:{NEW}")
    before = position(app)

    reencrypted, current, without, not_rotated = rotate(elsewhere)

    assert (reencrypted, current, without) == (0, 0, 2)
    assert set(not_rotated) == {BOB, CAROL}
    assert "no key with id 'k1'" in not_rotated[BOB]
    assert position(app) == before
    assert uses(elsewhere) == [("k3", True, True, 0, 0, 0), ("k1", False, False, 1, 1, 2)]


def test_a_login_that_saves_first_makes_the_rotation_decide_again(
    app: AeroAuth, clock: FixedClock, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = Story(app, clock)
    rotating = configure(BOTH)
    challenge = code_login(app)
    before = position(app)
    code = code_at(story.bob.secret, clock.now())
    other_writer_first(monkeypatch, rotating, lambda: app.verify_code(ENV, BOB, challenge, code))

    assert rotating.reencrypt_secrets(ENV, BOB) == REENCRYPTED

    assert types(events_since(app, before)) == [
        UserCredential.CodeAccepted,
        UserCredential.LoginSucceeded,
        UserCredential.TwoFactorSecretReencrypted,
    ]
    assert rotating.reencrypt_secrets(ENV, BOB) == ALREADY_CURRENT


def test_a_save_acknowledged_late_is_not_rotated_twice(
    app: AeroAuth, clock: FixedClock, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Story(app, clock)
    rotating = configure(BOTH)
    injected = commit_acknowledged_late(monkeypatch, rotating)
    before = position(app)

    assert rotating.reencrypt_secrets(ENV, BOB) == REENCRYPTED

    assert injected == [1]
    assert types(events_since(app, before)) == [UserCredential.TwoFactorSecretReencrypted]


def test_a_reset_after_the_rotation_leaves_no_secret_to_count(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    Story(app, clock)
    rotating = configure(BOTH)
    rotate(rotating)

    rotating.reset_two_factor(ENV, BOB, "lost phone")

    assert uses(rotating) == [("k2", True, True, 0, 1, 0), ("k1", True, False, 0, 0, 0)]
    assert [s.stage for s in stored_secrets(app)] == ["pending"]


def test_the_secrets_counted_are_those_the_loaded_users_hold(
    app: AeroAuth, clock: FixedClock, configure: Any
) -> None:
    """The census follows only the secret events; loading every user must agree."""
    Story(app, clock)
    rotating = configure(BOTH)
    rotating.reencrypt_secrets(ENV, CAROL)
    rotating.reset_two_factor(ENV, BOB, "new phone")
    again = app.start_login(ENV, BOB, BOB_PASSWORD)
    assert again.challenge_id is not None
    rotating.start_registration(ENV, BOB, again.challenge_id)

    counted = {(s.user_id, s.stage, s.encrypted_secret) for s in stored_secrets(app)}

    loaded = {
        (user.id, stage, encrypted)
        for username in usernames_by_environment(app)[ENV]
        for user in [app.user(ENV, username)]
        for stage, encrypted in user.stored_secrets().items()
    }
    assert counted == loaded
    assert sorted((stage, encrypted[:3]) for _, stage, encrypted in counted) == [
        ("pending", "k2."),
        ("pending", "k2."),
    ]
