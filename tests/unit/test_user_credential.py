"""The UserCredential aggregate: given its past events, when one command runs, then new events.

Each test builds the aggregate through its commands, collects those events
(they are the given), calls one command and asserts the events it adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from domain.base import AeroAggregate
from domain.credential import (
    ALREADY_CURRENT,
    DONE,
    NONE_STORED,
    PENDING,
    REENCRYPTED,
    REGISTERED,
    REGISTRATION,
    SECRET_TOPICS,
    TWO_FACTOR,
    UserCredential,
)
from domain.errors import InvalidChallengeError, TooManyAttemptsError, TwoFactorDisabledError
from domain.throttle import CODE_THROTTLE, PASSWORD_THROTTLE
from domain.totp import time_step

NOW = datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC)
TTL = timedelta(minutes=5)


def new_user(groups: tuple[str, ...] = ("finance",)) -> UserCredential:
    user = UserCredential.create("acme", "bob", "$argon2id$stub", groups, (), NOW)
    user.collect_events()
    return user


def registered_user() -> UserCredential:
    user = new_user()
    user.pass_password_step("c1", True, NOW + TTL, NOW)
    user.start_registration("c1", "k1.sealed", NOW)
    user.register_authenticator("c1", time_step(NOW), NOW)
    user.issue_recovery_codes(["salt$hash"], NOW)
    user.complete_login("registration", NOW)
    user.collect_events()
    return user


def at_code_step(user: UserCredential, challenge: str = "c2") -> UserCredential:
    user.pass_password_step(challenge, True, NOW + TTL, NOW)
    user.collect_events()
    return user


def new_events(user: UserCredential) -> list[type]:
    return [type(e) for e in user.collect_events()]


def test_a_new_user_has_the_given_groups_and_no_authenticator() -> None:
    user = UserCredential.create("acme", "Bob", "$argon2id$stub", ["finance"], ["auditor"], NOW)

    [created] = user.collect_events()
    assert isinstance(created, UserCredential.Created)
    assert (created.username, created.groups, created.roles) == (
        "Bob",
        frozenset({"finance"}),
        frozenset({"auditor"}),
    )
    assert not user.registered


def test_password_step_leads_to_registration_when_required_and_not_registered() -> None:
    user = new_user()

    step = user.pass_password_step("c1", True, NOW + TTL, NOW)

    assert step == REGISTRATION
    assert new_events(user) == [UserCredential.PasswordStepSucceeded]


def test_password_step_completes_the_login_when_2fa_is_neither_required_nor_registered() -> None:
    user = new_user()

    step = user.pass_password_step("c1", False, NOW + TTL, NOW)

    assert step == DONE
    assert new_events(user) == [
        UserCredential.PasswordStepSucceeded,
        UserCredential.LoginSucceeded,
    ]


def test_a_registered_user_is_asked_for_a_code_even_when_not_required() -> None:
    user = registered_user()

    step = user.pass_password_step("c2", False, NOW + TTL, NOW)

    assert step == TWO_FACTOR
    [event] = user.collect_events()
    assert isinstance(event, UserCredential.PasswordStepSucceeded)
    assert event.next_step == TWO_FACTOR


def test_tenth_consecutive_password_failure_locks_the_password_step_for_a_minute() -> None:
    user = new_user()
    for _ in range(9):
        user.fail_password_step(PASSWORD_THROTTLE, NOW)
    user.collect_events()

    user.fail_password_step(PASSWORD_THROTTLE, NOW)

    failed, locked = user.collect_events()
    assert isinstance(failed, UserCredential.PasswordStepFailed)
    assert isinstance(locked, UserCredential.PasswordStepLocked)
    assert locked.locked_until == NOW + timedelta(minutes=1)


def test_a_password_success_resets_the_failure_count() -> None:
    user = new_user()
    for _ in range(9):
        user.fail_password_step(PASSWORD_THROTTLE, NOW)
    user.pass_password_step("c1", False, NOW + TTL, NOW)
    user.collect_events()

    user.fail_password_step(PASSWORD_THROTTLE, NOW)

    assert new_events(user) == [UserCredential.PasswordStepFailed]


def test_fifth_consecutive_code_failure_locks_the_code_step_for_five_minutes() -> None:
    user = at_code_step(registered_user())
    for _ in range(4):
        user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)
    user.collect_events()

    user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)

    rejected, locked = user.collect_events()
    assert isinstance(rejected, UserCredential.CodeRejected)
    assert isinstance(locked, UserCredential.CodeStepLocked)
    assert locked.locked_until == NOW + timedelta(minutes=5)
    refusal = user.refuse_code(NOW + timedelta(minutes=1))
    assert isinstance(refusal, TooManyAttemptsError)
    assert refusal.retry_after == 240
    (refused,) = user.collect_events()
    assert isinstance(refused, UserCredential.CodeStepThrottled)
    assert refused.reason == "locked"


def test_code_failures_count_across_password_steps() -> None:
    user = at_code_step(registered_user())
    for _ in range(4):
        user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)
    at_code_step(user, "c3")

    user.reject_code("recovery", "wrong", CODE_THROTTLE, NOW)

    assert new_events(user) == [UserCredential.CodeRejected, UserCredential.CodeStepLocked]


def test_a_replayed_code_is_its_own_event_and_counts_as_a_failure() -> None:
    user = at_code_step(registered_user())
    for _ in range(4):
        user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)
    user.collect_events()
    assert user.is_replay(time_step(NOW))
    assert user.is_replay(time_step(NOW) - 1)
    assert not user.is_replay(time_step(NOW) + 1)

    user.record_replay(time_step(NOW), CODE_THROTTLE, NOW)

    assert new_events(user) == [UserCredential.CodeReplayed, UserCredential.CodeStepLocked]


def test_hundredth_code_failure_in_all_disables_the_authenticator() -> None:
    user = at_code_step(registered_user())
    for _ in range(99):
        user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)
    user.collect_events()

    user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)

    assert new_events(user) == [
        UserCredential.CodeRejected,
        UserCredential.CodeStepLocked,
        UserCredential.AuthenticatorDisabled,
    ]
    assert isinstance(user.refuse_code(NOW + timedelta(days=1)), TwoFactorDisabledError)
    assert new_events(user) == [UserCredential.CodeStepThrottled]


def test_an_open_code_step_refuses_nothing_and_records_nothing() -> None:
    user = at_code_step(registered_user())
    for _ in range(4):
        user.reject_code("totp", "wrong", CODE_THROTTLE, NOW)
    user.collect_events()

    assert user.refuse_code(NOW) is None
    assert new_events(user) == []


def test_a_reset_ends_the_pending_login_and_forgets_the_authenticator() -> None:
    user = at_code_step(registered_user())
    later = NOW + timedelta(minutes=1)

    user.reset_two_factor("lost phone, ticket 4711", later)

    assert new_events(user) == [UserCredential.TwoFactorReset]
    assert not user.registered
    assert user.recovery_codes == frozenset()
    assert user.sessions_valid_after == later
    with pytest.raises(InvalidChallengeError):
        user.check_challenge("c2", TWO_FACTOR, later)


def test_a_password_change_ends_the_pending_login() -> None:
    user = at_code_step(registered_user())
    later = NOW + timedelta(minutes=1)

    user.change_password("$argon2id$new", later)

    assert new_events(user) == [UserCredential.PasswordChanged]
    assert user.sessions_valid_after == later
    with pytest.raises(InvalidChallengeError):
        user.check_challenge("c2", TWO_FACTOR, later)


def logged_in_without_2fa(user: UserCredential, at: datetime) -> int:
    user.pass_password_step("c9", False, at + TTL, at)
    user.collect_events()
    assert user.last_login_version is not None
    return user.last_login_version


@pytest.mark.parametrize(
    "end_sessions",
    [
        lambda user, at: user.reset_two_factor("lost phone", at),
        lambda user, at: user.change_password("$argon2id$new", at),
    ],
    ids=["reset", "password change"],
)
def test_sessions_end_by_version_even_when_the_clock_steps_back(
    end_sessions: Callable[[UserCredential, datetime], None],
) -> None:
    user = new_user()
    before = logged_in_without_2fa(user, NOW)

    # A host whose clock is 1 ms behind: the event keeps the login's timestamp.
    end_sessions(user, NOW - timedelta(milliseconds=1))
    after = logged_in_without_2fa(user, NOW - timedelta(milliseconds=1))

    assert user.modified_on == NOW
    assert not user.session_valid(before)
    assert user.session_valid(after) and user.claims_current(after)


def test_a_role_change_leaves_the_session_valid_but_its_claims_stale() -> None:
    user = new_user()
    before = logged_in_without_2fa(user, NOW)

    user.change_roles(["auditor"], NOW)
    after = logged_in_without_2fa(user, NOW)

    assert user.session_valid(before) and not user.claims_current(before)
    assert user.claims_current(after)


def test_a_snapshot_from_before_session_versions_still_loads() -> None:
    user = new_user()
    logged_in_without_2fa(user, NOW)
    user.reset_two_factor("lost phone", NOW)
    state = dict(vars(UserCredential.Snapshot.take(user)))
    for name in ("sessions_ended_version", "claims_changed_version", "last_login_version"):
        state["state"].pop(name)
    old_snapshot = UserCredential.Snapshot(**state)

    loaded = old_snapshot.mutate(None)
    later = logged_in_without_2fa(loaded, NOW)

    assert loaded.sessions_ended_version == 0
    assert loaded.session_valid(later)


def test_the_latest_challenge_is_good_for_its_step_until_it_expires() -> None:
    user = at_code_step(registered_user(), "c2")

    user.check_challenge("c2", TWO_FACTOR, NOW + TTL - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("challenge", "step", "at"),
    [
        ("c1", TWO_FACTOR, NOW),  # an older challenge
        ("c2", REGISTRATION, NOW),  # another step
        ("c2", TWO_FACTOR, NOW + TTL + timedelta(seconds=1)),  # expired
        ("", TWO_FACTOR, NOW),
    ],
)
def test_other_challenges_are_refused(challenge: str, step: str, at: datetime) -> None:
    user = at_code_step(registered_user())

    with pytest.raises(InvalidChallengeError):
        user.check_challenge(challenge, step, at)


def test_groups_and_roles_change_only_when_they_differ() -> None:
    user = new_user(("finance",))

    user.change_groups(["finance"], NOW)
    user.change_roles([], NOW)
    user.change_groups(["finance", "hr"], NOW)

    assert new_events(user) == [UserCredential.GroupsChanged]
    assert user.groups == frozenset({"finance", "hr"})


# ----- re-encrypting the secrets under the current key (a key rotation) -----


def rewrap(old: str) -> str:
    """A stand-in for the application's decrypt-then-encrypt: the same body, key k2."""
    return "k2." + old.partition(".")[2]


def test_a_secret_under_an_older_key_is_reencrypted_with_one_event_naming_both_keys() -> None:
    user = registered_user()

    outcome = user.reencrypt_secrets("k2", rewrap, NOW)

    [event] = user.collect_events()
    assert outcome == REENCRYPTED
    assert isinstance(event, UserCredential.TwoFactorSecretReencrypted)
    assert (event.stage, event.previous_key_id, event.key_id) == (REGISTERED, "k1", "k2")
    assert event.encrypted_secret == "k2.sealed" == user.secret
    assert user.stored_secrets() == {REGISTERED: "k2.sealed"}
    # The login goes on as before: still registered, the same code step.
    assert user.registered and user.next_step(True) == TWO_FACTOR


def test_a_second_rotation_to_the_same_key_records_nothing() -> None:
    user = registered_user()
    user.reencrypt_secrets("k2", rewrap, NOW)
    user.collect_events()

    outcome = user.reencrypt_secrets("k2", rewrap, NOW)

    assert outcome == ALREADY_CURRENT
    assert new_events(user) == []


def test_a_user_without_an_authenticator_has_nothing_to_reencrypt() -> None:
    user = new_user()

    assert user.reencrypt_secrets("k2", rewrap, NOW) == NONE_STORED
    assert new_events(user) == []


def test_the_secret_of_a_registration_in_progress_is_reencrypted_and_still_confirms() -> None:
    user = new_user()
    user.pass_password_step("c1", True, NOW + TTL, NOW)
    user.start_registration("c1", "k1.started", NOW)
    user.collect_events()

    assert user.reencrypt_secrets("k2", rewrap, NOW) == REENCRYPTED

    [event] = user.collect_events()
    assert isinstance(event, UserCredential.TwoFactorSecretReencrypted)
    assert (event.stage, event.encrypted_secret) == (PENDING, "k2.started")
    # The same registration, now confirmed with the re-encrypted secret.
    assert user.registration_secret("c1") == "k2.started"
    user.register_authenticator("c1", time_step(NOW), NOW)
    assert user.secret == "k2.started"


def test_a_reencryption_that_lands_under_another_key_is_refused() -> None:
    user = registered_user()

    with pytest.raises(ValueError, match="not under key 'k2'"):
        user.reencrypt_secrets("k2", lambda old: "k3." + old, NOW)
    assert new_events(user) == []


def sample(annotation: str) -> object:
    values: dict[str, object] = {
        "str": "k9.other",
        "str | None": "k9.other",
        "int": 7,
        "bool": True,
        "datetime": NOW,
        "frozenset[str]": frozenset({"x"}),
    }
    return values[annotation]


def test_only_the_secret_topics_change_which_secrets_a_credential_holds() -> None:
    """``stored_secrets`` follows SECRET_TOPICS alone (the start's key check, ``keys
    status``): every other event must leave the secrets as they were."""
    events = [
        member
        for name, member in vars(UserCredential).items()
        if isinstance(member, type)
        and issubclass(member, AeroAggregate.Event)
        and name not in ("Event", "Created")
    ]
    assert len(events) >= 25
    changing = set()
    for cls in events:
        user = registered_user()
        user.pending_secret = "k1.pending"
        before = user.stored_secrets()
        values = {
            f.name: sample(str(f.type))
            for f in dataclasses.fields(cls)
            if f.name not in ("originator_id", "originator_version", "timestamp")
        }
        event = cls(
            originator_id=user.id,
            originator_version=user.version + 1,
            timestamp=NOW,
            **values,
        )
        event.apply(user)
        if user.stored_secrets() != before:
            changing.add(cls.TOPIC)
    assert changing == set(SECRET_TOPICS)


def test_a_bare_holder_follows_the_secret_events_to_the_aggregates_secrets() -> None:
    user = new_user()
    user.pass_password_step("c1", True, NOW + TTL, NOW)
    user.start_registration("c1", "k1.first", NOW)
    user.register_authenticator("c1", time_step(NOW), NOW)
    user.reset_two_factor("lost phone", NOW)
    user.pass_password_step("c2", True, NOW + TTL, NOW)
    user.start_registration("c2", "k1.second", NOW)
    user.reencrypt_secrets("k2", rewrap, NOW)
    user.register_authenticator("c2", time_step(NOW), NOW)
    holder = UserCredential.secrets_only()

    for event in user.collect_events():
        if event.TOPIC in SECRET_TOPICS:
            event.apply(holder)

    assert holder.stored_secrets() == user.stored_secrets() == {REGISTERED: "k2.second"}
