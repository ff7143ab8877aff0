"""History answers point-in-time questions from events alone, on every store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from application.clock import FixedClock
from application.history import History
from application.service import AeroAuth
from application.timeline import DESCRIPTIONS, FAILURES
from domain.credential import SNAPSHOT_INTERVAL
from domain.errors import EnvironmentNotFoundError, InvalidTimestampError, UserNotFoundError
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.rules import user_id
from domain.service_credential import ServiceCredential as SC
from domain.unknown_user import UnknownUserLogin
from projections.audit_rules import FAILURE, RULES, SUCCESS
from tests.investigate.script import ENV, OTHER_ENV, PASSWORDS, Scripted, at

# ----- policy_at -----


def test_policy_at_creation_is_off_and_names_the_creator(scripted: Scripted) -> None:
    answer = scripted.history().policy_at(ENV, at("09:00:00"))
    assert (answer.require_2fa, answer.groups) == (False, ())
    assert (answer.changed_by, answer.changed_at) == ("operator", at("09:00:00"))


def test_policy_at_an_instant_equal_to_a_change_includes_the_change(scripted: Scripted) -> None:
    history = scripted.history()
    just_before = history.policy_at(ENV, at("09:20:00") - timedelta(microseconds=1))
    exactly = history.policy_at(ENV, at("09:20:00"))
    assert just_before.require_2fa is False
    assert (exactly.require_2fa, exactly.groups) == (True, ())
    assert (exactly.changed_by, exactly.changed_at) == ("alice", at("09:20:00"))


@pytest.mark.parametrize(
    ("instant", "require_2fa", "groups", "changed_at"),
    [
        ("09:29:59", True, (), "09:20:00"),
        ("09:30:00", True, ("finance",), "09:30:00"),
        ("10:19:59", True, ("finance",), "09:30:00"),
        ("10:20:00", False, ("finance",), "10:20:00"),
    ],
)
def test_policy_at_follows_each_change(
    scripted: Scripted, instant: str, require_2fa: bool, groups: tuple[str, ...], changed_at: str
) -> None:
    answer = scripted.history().policy_at(ENV, at(instant))
    assert (answer.require_2fa, answer.groups) == (require_2fa, groups)
    assert answer.changed_at == at(changed_at)


def test_policy_at_accepts_any_offset_and_answers_in_utc(scripted: Scripted) -> None:
    plus_one = timezone(timedelta(hours=1))
    answer = scripted.history().policy_at(ENV, datetime(2026, 3, 3, 10, 20, tzinfo=plus_one))
    assert answer.require_2fa is True  # 10:20+01:00 is 09:20Z
    assert answer.at == at("09:20:00")
    assert answer.at.utcoffset() == timedelta(0)


# ----- environment_at / user_at -----


def test_environment_at_rebuilds_the_policy_of_that_instant(scripted: Scripted) -> None:
    environment = scripted.history().environment_at(ENV, at("09:35:00"))
    assert environment.require_2fa is True
    assert environment.selected_groups == frozenset({"finance"})


def test_user_at_shows_the_groups_and_registration_of_that_instant(scripted: Scripted) -> None:
    history = scripted.history()
    assert history.user_at(ENV, "carol", at("09:49:59")).groups == {"sales"}
    assert history.user_at(ENV, "carol", at("09:50:00")).groups == {"finance", "sales"}
    assert history.user_at(ENV, "bob", at("09:39:59")).registered is False
    assert history.user_at(ENV, "bob", at("09:40:00")).registered is True
    assert history.user_at(ENV, "bob", at("10:09:59")).registered is True
    assert history.user_at(ENV, "bob", at("10:10:00")).registered is False


def test_user_at_compares_usernames_case_insensitively(scripted: Scripted) -> None:
    assert scripted.history().user_at(ENV, "BOB", at("09:41:00")).username == "bob"


def test_user_at_before_the_user_existed_is_user_not_found(scripted: Scripted) -> None:
    with pytest.raises(UserNotFoundError, match="did not exist at 2026-03-03T10:29:59Z") as e:
        scripted.history().user_at(ENV, "dave", at("10:29:59"))
    assert "created at 2026-03-03T10:30:00Z" in e.value.detail


def test_user_at_the_instant_of_creation_finds_the_user(scripted: Scripted) -> None:
    assert scripted.history().user_at(ENV, "dave", at("10:30:00")).version == 1


def test_an_unknown_user_is_user_not_found(scripted: Scripted) -> None:
    with pytest.raises(UserNotFoundError, match="no user 'zoe' in environment 'acme'"):
        scripted.history().user_at(ENV, "zoe", at("10:30:00"))


def test_before_the_environment_existed_is_environment_not_found(scripted: Scripted) -> None:
    history = scripted.history()
    with pytest.raises(EnvironmentNotFoundError, match="did not exist at"):
        history.environment_at(ENV, at("08:59:59"))
    with pytest.raises(EnvironmentNotFoundError, match="did not exist at"):
        history.user_at(ENV, "alice", at("08:59:59"))
    with pytest.raises(EnvironmentNotFoundError, match="did not exist at"):
        history.policy_at(ENV, at("08:59:59"))


def test_an_unknown_environment_is_environment_not_found(scripted: Scripted) -> None:
    history = scripted.history()
    with pytest.raises(EnvironmentNotFoundError, match="no environment 'initech'"):
        history.policy_at("initech", at("10:00:00"))
    with pytest.raises(EnvironmentNotFoundError):
        history.who_was_required("initech", at("10:00:00"))
    with pytest.raises(EnvironmentNotFoundError):
        history.timeline("initech", "bob")


def test_an_instant_in_the_future_is_an_invalid_timestamp(scripted: Scripted) -> None:
    history = scripted.history()
    now = scripted.clock.now()
    assert history.policy_at(ENV, now).require_2fa is False
    later = now + timedelta(microseconds=1)
    for ask in (
        lambda: history.policy_at(ENV, later),
        lambda: history.environment_at(ENV, later),
        lambda: history.user_at(ENV, "bob", later),
        lambda: history.required_at(ENV, "bob", later),
        lambda: history.who_was_required(ENV, later),
    ):
        with pytest.raises(InvalidTimestampError, match="in the future"):
            ask()


def test_a_naive_instant_is_refused(scripted: Scripted) -> None:
    history = scripted.history()
    with pytest.raises(InvalidTimestampError, match="UTC offset"):
        history.user_at(ENV, "bob", datetime(2026, 3, 3, 10, 0))
    with pytest.raises(InvalidTimestampError, match="UTC offset"):
        history.timeline(ENV, "bob", since=datetime(2026, 3, 3, 10, 0))


# ----- required_at / who_was_required -----


@pytest.mark.parametrize(
    ("username", "instant", "required", "rule"),
    [
        ("bob", "09:19:59", False, None),
        ("bob", "09:20:00", True, "all"),
        ("carol", "09:20:00", True, "all"),
        ("bob", "09:30:00", True, "group:finance"),
        ("carol", "09:30:00", False, None),
        ("carol", "09:50:00", True, "group:finance"),
        ("bob", "10:20:00", False, None),
    ],
)
def test_required_at_uses_the_policy_and_groups_of_that_instant(
    scripted: Scripted, username: str, instant: str, required: bool, rule: str | None
) -> None:
    answer = scripted.history().required_at(ENV, username, at(instant))
    assert (answer.required, answer.rule) == (required, rule)


def test_required_at_reports_what_decided_it(scripted: Scripted) -> None:
    answer = scripted.history().required_at(ENV, "carol", at("09:55:00"))
    assert answer.groups == ("finance", "sales")
    assert (answer.policy_require_2fa, answer.policy_groups) == (True, ("finance",))
    assert (answer.policy_changed_by, answer.policy_changed_at) == ("alice", at("09:30:00"))
    assert answer.registered is False
    assert answer.username == "carol"


def test_required_at_says_whether_an_authenticator_was_registered(scripted: Scripted) -> None:
    history = scripted.history()
    assert history.required_at(ENV, "bob", at("09:45:00")).registered is True
    assert history.required_at(ENV, "bob", at("10:15:00")).registered is False


def test_who_was_required_lists_every_user_existing_then(scripted: Scripted) -> None:
    answers = scripted.history().who_was_required(ENV, at("09:35:00"))
    assert [(a.username, a.required, a.rule) for a in answers] == [
        ("alice", False, None),
        ("bob", True, "group:finance"),
        ("carol", False, None),
    ]  # not dave, created later; not globex's bob


def test_who_was_required_when_everyone_was(scripted: Scripted) -> None:
    answers = scripted.history().who_was_required(ENV, at("09:20:00"))
    assert {(a.username, a.rule) for a in answers} == {
        ("alice", "all"),
        ("bob", "all"),
        ("carol", "all"),
    }


def test_who_was_required_keeps_environments_apart(scripted: Scripted) -> None:
    answers = scripted.history().who_was_required(OTHER_ENV, at("11:00:00"))
    assert [(a.environment, a.username) for a in answers] == [(OTHER_ENV, "bob")]


def test_who_was_required_reports_progress(scripted: Scripted) -> None:
    seen: list[tuple[int, int]] = []
    scripted.history().who_was_required(
        ENV, at("11:00:00"), progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


# ----- timeline -----


def test_timeline_tells_what_happened_to_the_user_in_order(scripted: Scripted) -> None:
    entries = scripted.history().timeline(ENV, "bob")
    assert [e.type for e in entries] == [
        "user_created",
        "login_password_succeeded",
        "two_factor_registration_started",
        "two_factor_registered",
        "recovery_codes_issued",
        "login_succeeded",
        "login_password_failed",
        "two_factor_reset",
    ]
    assert [e.version for e in entries] == list(range(1, 9))
    created, failed, reset = entries[0], entries[6], entries[7]
    assert (created.actor, created.ip, created.user_agent) == (
        "alice",
        "198.51.100.7",
        "Mozilla/5.0 (admin console)",
    )
    assert created.details == {"groups": ["finance"], "roles": []}
    assert (failed.actor, failed.ip, failed.outcome) == ("bob", "203.0.113.9", "failure")
    assert failed.occurred_at == at("09:45:00")
    assert (reset.actor, reset.outcome) == ("alice", "success")
    assert reset.details == {"reason": "lost phone, ticket 4711"}
    assert entries[4].details == {"count": 10}


def test_timeline_since_is_inclusive_and_until_exclusive(scripted: Scripted) -> None:
    entries = scripted.history().timeline(ENV, "bob", since=at("09:40:00"), until=at("10:10:00"))
    assert [e.version for e in entries] == [2, 3, 4, 5, 6, 7]
    assert scripted.history().timeline(ENV, "bob", since=at("10:10:00"))[0].type == (
        "two_factor_reset"
    )
    assert scripted.history().timeline(ENV, "bob", until=at("09:10:00")) == []
    assert scripted.history().timeline(ENV, "bob", since=at("10:10:01")) == []


def test_timeline_with_policy_merges_the_environments_changes(scripted: Scripted) -> None:
    entries = scripted.history().timeline(
        ENV, "bob", since=at("09:10:00"), until=at("09:45:00"), include_policy=True
    )
    assert [(e.stream, e.type) for e in entries][:4] == [
        ("user", "user_created"),
        ("environment", "two_factor_requirement_changed"),
        ("environment", "groups_selected"),
        ("user", "login_password_succeeded"),
    ]
    assert entries[2].details == {"groups": ["finance"]}


def test_timeline_details_never_hold_hashes_secrets_or_challenges(scripted: Scripted) -> None:
    uid = user_id(ENV, "bob")
    hidden: set[str] = {scripted.bob_secret, PASSWORDS["bob"]}
    for event in scripted.app.events.get(uid):
        for name in ("password_hash", "encrypted_secret", "challenge_id", "code_hash"):
            if hasattr(event, name):
                hidden.add(getattr(event, name))
        hidden.update(getattr(event, "code_hashes", ()))
    hidden.discard("")
    assert len(hidden) > 5
    entries = scripted.history().timeline(ENV, "bob", include_policy=True)
    text = json.dumps([e.details for e in entries], default=str)
    assert not [value for value in hidden if value in text]
    for entry in entries:
        assert not set(entry.details) & {
            "password_hash",
            "encrypted_secret",
            "challenge_id",
            "code_hash",
            "code_hashes",
            "secret",
        }


def test_timeline_of_an_unknown_user_is_user_not_found(scripted: Scripted) -> None:
    with pytest.raises(UserNotFoundError):
        scripted.history().timeline(ENV, "zoe")


def test_timeline_since_after_until_is_an_invalid_timestamp(scripted: Scripted) -> None:
    with pytest.raises(InvalidTimestampError):
        scripted.history().timeline(ENV, "bob", since=at("10:00:00"), until=at("09:00:00"))


# ----- read only, and no full scans -----


def test_history_writes_nothing(scripted: Scripted) -> None:
    app = scripted.app
    before = app.recorder.max_notification_id()
    assert app.snapshots is not None
    snapshots_before = list(app.snapshots.get(user_id(ENV, "bob")))
    history = scripted.history()
    history.policy_at(ENV, at("10:00:00"))
    history.environment_at(ENV, at("10:00:00"))
    history.user_at(ENV, "bob", at("10:00:00"))
    history.required_at(ENV, "bob", at("10:00:00"))
    history.who_was_required(ENV, at("11:00:00"))
    history.timeline(ENV, "bob", include_policy=True)
    with pytest.raises(UserNotFoundError):
        history.user_at(ENV, "dave", at("10:00:00"))
    assert app.recorder.max_notification_id() == before
    assert list(app.snapshots.get(user_id(ENV, "bob"))) == snapshots_before


class CountingEvents:
    """Wraps the event store's ``get`` to count every event it hands out."""

    def __init__(self, app: AeroAuth) -> None:
        self.read = 0
        self._get = app.events.get

    def get(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in self._get(*args, **kwargs):
            self.read += 1
            yield event


def long_history(app: AeroAuth, clock: FixedClock, changes: int) -> list[datetime]:
    """carol's groups change ``changes`` times, a second apart; returns each change's instant."""
    app.create_environment(ENV, "Acme", "BizzStream Aero", "alice", PASSWORDS["alice"])
    app.create_user(ENV, "carol", PASSWORDS["carol"], groups=["g0"])
    user = app.user(ENV, "carol")
    instants = []
    for i in range(1, changes + 1):
        now = clock.advance(seconds=1)
        user.change_groups([f"g{i}"], now)
        instants.append(now)
        if i % 50 == 0:
            app.save(user)
    app.save(user)
    clock.advance(seconds=1)
    return instants


def test_user_at_reads_a_few_events_not_the_whole_history(
    app: AeroAuth, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    instants = long_history(app, clock, 449)  # versions 1 to 450
    assert app.snapshots is not None
    snapshots = app.snapshots.get(user_id(ENV, "carol"))
    assert [s.originator_version for s in snapshots] == list(
        range(SNAPSHOT_INTERVAL, 451, SNAPSHOT_INTERVAL)
    )
    counting = CountingEvents(app)
    monkeypatch.setattr(app.events, "get", counting.get)
    history = History(app)
    for i in (1, 137, 250, 449):
        counting.read = 0
        user = history.user_at(ENV, "carol", instants[i - 1])
        assert user.groups == {f"g{i}"}
        assert user.version == i + 1
        # ~log2(450) probes, plus the events after the nearest snapshot.
        assert counting.read <= 15 + SNAPSHOT_INTERVAL - 1, counting.read
        counting.read = 0
        assert history.user_at(
            ENV, "carol", instants[i - 1] + timedelta(milliseconds=500)
        ).groups == {f"g{i}"}


def topic(event_class: type) -> str:
    return str(event_class.TOPIC)  # type: ignore[attr-defined]


def test_timeline_types_and_outcomes_are_those_of_the_audit_log() -> None:
    described = {topic(event_class) for event_class in DESCRIPTIONS}
    # Events of the users' and environments' own streams; the others' entries name
    # no user stream (an unknown user's attempt, a login through the provider, a
    # service credential) or are none (the links' index, whose user events are described).
    others = {UnknownUserLogin, FederatedLogin, IdentityLink, RejectedCallback, SC}
    assert described == {
        topic
        for topic in RULES
        if not any(topic.startswith(f"{aggregate.TOPIC}.") for aggregate in others)
    }
    for event_class, (kind, _) in DESCRIPTIONS.items():
        rule = RULES[topic(event_class)]
        outcome = FAILURE if event_class in FAILURES else SUCCESS
        assert (kind, outcome) == (rule.type, rule.outcome), topic(event_class)
