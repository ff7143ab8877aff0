"""The audit log: one entry per event, filters, pages, export, and the hash chain."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha256
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import (
    Cipher,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    Notification,
)
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from application.clock import FixedClock
from application.service import AeroAuth
from application.service_credentials import ServiceCredentials
from application.transcoding import OrjsonTranscoder
from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import (
    InvalidCodeError,
    InvalidCredentialsError,
    TooManyAttemptsError,
)
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.origin import Origin, originating
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application
from projections.api import AuditEntry, AuditQuery, ChainReport, InvalidCursorError
from projections.audit import verify_chain
from projections.audit_chain import (
    GENESIS,
    NotCanonicalError,
    canonical,
    canonical_json,
    chain_hash,
    utc_text,
)
from projections.audit_rules import AUDIT_TYPES, RULES
from projections.audit_store import OwnerCache, SqlAuditView
from projections.dialects import SQLiteDialect
from projections.export import csv_lines, jsonl_lines
from projections.live import LiveReadModels
from projections.queries import encode_cursor
from projections.store import ViewStore
from tests.conftest import DatabaseUnderTest, make_settings
from tests.projections.conftest import (
    ADMIN,
    PASSWORD,
    caught_up,
    code_at,
    login_challenge,
    make_environment,
    raw_sql,
    register,
    toggle_groups,
    wrong_code,
)

DESK = Origin(actor=ADMIN, ip="203.0.113.7", user_agent="Mozilla/5.0 (desk)")
PHONE = Origin(actor=None, ip="198.51.100.2", user_agent="AeroApp/1.0")


def entries(read_models: LiveReadModels, **filters: object) -> list[AuditEntry]:
    return list(read_models.export_audit(AuditQuery("acme", **filters)))  # type: ignore[arg-type]


def kinds(found: list[AuditEntry]) -> list[tuple[str, str | None, str, dict[str, object]]]:
    return [(e.type, e.username, e.outcome, e.details) for e in found]


def test_admin_commands_record_what_who_and_from_where(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    with originating(DESK):
        make_environment(app)
        app.create_user("acme", "Bob", PASSWORD, groups=["finance"])
        app.set_policy("acme", True, ["finance"])
        app.change_groups("acme", "bob", ["finance", "sales"])
        app.change_roles("acme", "bob", ["auditor"])
        app.change_password("acme", "bob", "another long pass 2")
        app.reset_two_factor("acme", "bob", "lost phone, ticket 4711")
    caught_up(app, read_models)

    found = entries(read_models)
    assert kinds(found) == [
        (
            "environment_created",
            None,
            "success",
            {"display_name": "Acme", "issuer": "BizzStream Aero"},
        ),
        ("user_created", "alice", "success", {"groups": [], "roles": ["admin", "auditor"]}),
        ("user_created", "Bob", "success", {"groups": ["finance"], "roles": []}),
        ("two_factor_requirement_changed", None, "success", {"require_2fa": True}),
        ("groups_selected", None, "success", {"groups": ["finance"]}),
        ("groups_changed", "Bob", "success", {"groups": ["finance", "sales"]}),
        ("roles_changed", "Bob", "success", {"roles": ["auditor"]}),
        ("password_changed", "Bob", "success", {}),
        ("two_factor_reset", "Bob", "success", {"reason": "lost phone, ticket 4711"}),
    ]
    assert {(e.environment, e.actor, e.ip, e.user_agent) for e in found} == {
        ("acme", ADMIN, "203.0.113.7", "Mozilla/5.0 (desk)")
    }
    assert [e.position for e in found] == sorted(e.position for e in found)
    assert found[0].occurred_at.utcoffset() == timedelta(0)


def test_service_credentials_issued_and_revoked_are_the_environments_entries(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    credentials = ServiceCredentials(app)
    with originating(DESK):
        make_environment(app)
        credentials.create("acme", "billing")
        credentials.revoke("acme", "billing")
        credentials.create("acme", "billing")
    caught_up(app, read_models)

    found = entries(read_models, types=("service_credential_created", "service_credential_revoked"))
    assert kinds(found) == [
        ("service_credential_created", None, "success", {"name": "billing"}),
        ("service_credential_revoked", None, "success", {"name": "billing"}),
        ("service_credential_created", None, "success", {"name": "billing"}),
    ]
    assert {e.actor for e in found} == {ADMIN}


def test_logins_record_every_step_and_never_a_secret(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    bob = app.create_user("acme", "bob", PASSWORD)
    app.set_policy("acme", True, [])
    with originating(PHONE):
        secret, recovery_codes = register(app, clock, "acme", "bob")
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "bob", "not the password")
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "mallory", "whatever it is")

        challenge = login_challenge(app, "acme", "bob")
        used = code_at(secret, clock.now())
        with pytest.raises(InvalidCodeError):
            app.verify_code("acme", "bob", challenge, used)  # the registration used it
        with pytest.raises(InvalidCodeError):
            app.verify_code("acme", "bob", challenge, "12345")
        for _ in range(3):
            with pytest.raises(InvalidCodeError):
                app.verify_code("acme", "bob", challenge, wrong_code(secret, clock.now()))
        with pytest.raises(TooManyAttemptsError):
            app.verify_code("acme", "bob", challenge, wrong_code(secret, clock.now()))

        clock.advance(minutes=6)
        challenge = login_challenge(app, "acme", "bob")
        app.use_recovery_code("acme", "bob", challenge, recovery_codes[0])
        new_codes = app.regenerate_recovery_codes("acme", "bob")
        challenge = login_challenge(app, "acme", "bob")
        app.verify_code("acme", "bob", challenge, code_at(secret, clock.now()))
    caught_up(app, read_models)

    logins = [e for e in entries(read_models) if e.ip == PHONE.ip]
    assert kinds(logins) == [
        ("login_password_succeeded", "bob", "success", {"next_step": "registration"}),
        ("two_factor_registration_started", "bob", "success", {}),
        ("two_factor_registered", "bob", "success", {}),
        ("recovery_codes_issued", "bob", "success", {"count": 10}),
        ("login_succeeded", "bob", "success", {"method": "registration"}),
        ("login_password_failed", "bob", "failure", {"reason": "wrong_password"}),
        ("login_password_failed", "mallory", "failure", {"reason": "unknown_user"}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("two_factor_code_replayed", "bob", "failure", {}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "malformed"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        ("two_factor_failed", "bob", "failure", {"kind": "totp", "reason": "wrong"}),
        (
            "two_factor_locked",
            "bob",
            "failure",
            {"locked_until": "2026-11-28T10:05:10Z"},
        ),
        ("two_factor_throttled", "bob", "failure", {"reason": "locked"}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("recovery_code_used", "bob", "success", {"remaining": 9}),
        ("login_succeeded", "bob", "success", {"method": "recovery"}),
        ("recovery_codes_issued", "bob", "success", {"count": 10}),
        ("login_password_succeeded", "bob", "success", {"next_step": "two_factor"}),
        ("two_factor_succeeded", "bob", "success", {"kind": "totp"}),
        ("login_succeeded", "bob", "success", {"method": "totp"}),
    ]
    assert {e.actor for e in logins} == {"bob", "mallory"}

    user = app.user("acme", "bob")
    secrets = {
        PASSWORD,
        "not the password",
        bob.password_hash,
        secret,
        user.secret,
        used,
        *recovery_codes,
        *new_codes,
        *user.recovery_codes,
    }
    # The events themselves hold the challenge ids, hashes and encrypted secrets.
    for notification in app.recorder.select_notifications(0, 1000):
        event = app.mapper.to_domain_event(notification)
        for name in ("challenge_id", "encrypted_secret", "password_hash", "code_hash"):
            if getattr(event, name, None):
                secrets.add(getattr(event, name))
        secrets.update(getattr(event, "code_hashes", ()))
    assert len(secrets) > 40
    everything = b"".join(canonical(e) for e in entries(read_models)).decode()
    leaked = [s for s in secrets if s and s in everything]
    assert leaked == []


def test_password_throttling_reads_as_failed_logins_saying_why(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    for _ in range(11):
        with pytest.raises(InvalidCredentialsError):
            app.start_login("acme", "bob", "not the password")
    caught_up(app, read_models)

    failures = entries(read_models, username="bob", outcome="failure")
    assert [e.details.get("reason") for e in failures] == ["wrong_password"] * 10 + [
        None,
        "throttled",
    ]
    assert failures[-2].type == "password_step_locked"
    assert failures[-1].details["locked_until"] == failures[-2].details["locked_until"]


def test_filters_combine_by_user_type_outcome_and_time(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    make_environment(app, "other")
    start = clock.now()
    app.create_user("acme", "Bob", PASSWORD)
    clock.advance(hours=1)
    with pytest.raises(InvalidCredentialsError):
        app.start_login("acme", "bob", "not the password")
    clock.advance(hours=1)
    app.change_roles("acme", "bob", ["auditor"])
    app.change_roles("acme", "alice", ["admin"])
    caught_up(app, read_models)

    assert [e.type for e in entries(read_models, username="BOB")] == [
        "user_created",
        "login_password_failed",
        "roles_changed",
    ]
    assert [e.username for e in entries(read_models, types=("roles_changed",))] == [
        "Bob",
        "alice",
    ]
    assert [e.type for e in entries(read_models, types=("user_created", "roles_changed"))] == [
        "user_created",
        "user_created",
        "roles_changed",
        "roles_changed",
    ]
    assert [e.type for e in entries(read_models, outcome="failure")] == ["login_password_failed"]
    hour = timedelta(hours=1)
    one_hour = entries(read_models, since=start + hour, until=start + 2 * hour)
    assert [e.type for e in one_hour] == ["login_password_failed"]
    assert len(entries(read_models, since=start, until=start)) == 0
    assert len(entries(read_models, since=start + timedelta(hours=2))) == 2
    assert [e.environment for e in read_models.export_audit(AuditQuery("other"))] == [
        "other",
        "other",
    ]
    assert entries(read_models, username="bob", types=("roles_changed",), outcome="failure") == []

    assert [e.type for e in read_models.history("acme", "bob")] == [
        "user_created",
        "login_password_failed",
        "roles_changed",
    ]


def test_pages_run_oldest_first_and_meet_the_export(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 40)
    caught_up(app, read_models)

    pages, cursor = [], None
    while True:
        page = read_models.audit(AuditQuery("acme", username="bob"), 7, cursor)
        pages.append(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [7] * 5 + [6]
    paged = [e for p in pages for e in p]
    assert paged == entries(read_models, username="bob")
    assert [e.position for e in paged] == sorted({e.position for e in paged})

    view = read_models.views.audit
    assert isinstance(view, SqlAuditView)
    from projections.audit import export

    assert list(export(view, AuditQuery("acme"), page=3)) == entries(read_models)

    for bad in ["", "garbage!", "eyJrIjoiYXVkaXQiLCJhIjoiMSJ9"]:
        with pytest.raises(InvalidCursorError):
            read_models.audit(AuditQuery("acme"), 7, bad)
    for huge in [2**63, 10**40, -1]:
        forged = encode_cursor("audit", huge)
        with pytest.raises(InvalidCursorError):
            read_models.audit(AuditQuery("acme"), 7, forged)
    with pytest.raises(ValueError, match="limit"):
        read_models.audit(AuditQuery("acme"), 0, None)


def test_exports_as_csv_and_json_lines(app: AeroAuth, read_models: LiveReadModels) -> None:
    with originating(Origin(actor="=cmd|' /C calc'!A0", ip="203.0.113.7", user_agent='a "b", c')):
        make_environment(app)
    caught_up(app, read_models)
    found = entries(read_models)

    lines = list(jsonl_lines(iter(found)))
    assert [json.loads(line)["type"] for line in lines] == [e.type for e in found]
    first = json.loads(lines[0])
    assert first == {
        "position": found[0].position,
        "occurred_at": "2026-11-28T10:00:10Z",
        "type": "environment_created",
        "username": None,
        "actor": "=cmd|' /C calc'!A0",
        "outcome": "success",
        "ip": "203.0.113.7",
        "user_agent": 'a "b", c',
        "details": {"display_name": "Acme", "issuer": "BizzStream Aero"},
    }

    rows = list(csv.reader(io.StringIO("".join(csv_lines(iter(found))))))
    assert rows[0] == [
        "position",
        "occurred_at",
        "type",
        "username",
        "actor",
        "outcome",
        "ip",
        "user_agent",
        "details",
    ]
    assert len(rows) == len(found) + 1
    # A cell a spreadsheet would run as a formula is defused (OWASP CSV injection).
    assert rows[1][4] == "'=cmd|' /C calc'!A0"
    assert rows[1][7] == 'a "b", c'
    assert json.loads(rows[1][8]) == found[0].details


def test_the_hash_chain_names_the_first_tampered_entry(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock, database: DatabaseUnderTest
) -> None:
    make_environment(app)
    make_environment(app, "other")
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 6)
    caught_up(app, read_models)
    positions = [e.position for e in entries(read_models)]
    assert read_models.verify_audit_chain("acme") == ChainReport("acme", len(positions), None)
    assert read_models.verify_audit_chain("nowhere") == ChainReport("nowhere", 0, None)

    # Each tampering breaks the chain earlier than the one before.
    delete = "DELETE FROM audit_v1_a WHERE position = ?"
    raw_sql(database, read_models, delete, positions[-1])
    assert read_models.verify_audit_chain("acme").first_broken_position == positions[-1]

    raw_sql(
        database,
        read_models,
        "UPDATE audit_v1_a SET details = ? WHERE position = ?",
        '{"groups":["admins"]}',
        positions[4],
    )
    report = read_models.verify_audit_chain("acme")
    assert (report.entries_checked, report.first_broken_position) == (5, positions[4])
    assert not report.intact
    assert read_models.verify_audit_chain("other").intact

    raw_sql(database, read_models, delete, positions[1])
    assert read_models.verify_audit_chain("acme").first_broken_position == positions[2]


@pytest.mark.parametrize("details", ['{"groups":1.0}', '{"n":' + str(2**70) + "}"])
def test_details_no_rule_writes_are_named_as_tampered_not_a_crash(
    app: AeroAuth,
    read_models: LiveReadModels,
    clock: FixedClock,
    database: DatabaseUnderTest,
    details: str,
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    caught_up(app, read_models)
    positions = [e.position for e in entries(read_models)]
    update = "UPDATE audit_v1_a SET details = ? WHERE position = ?"
    raw_sql(database, read_models, update, details, positions[1])
    report = read_models.verify_audit_chain("acme")
    assert (report.entries_checked, report.first_broken_position) == (2, positions[1])


def test_every_type_of_api_md_is_produced() -> None:
    required = {
        "environment_created",
        "two_factor_requirement_changed",
        "groups_selected",
        "user_created",
        "groups_changed",
        "roles_changed",
        "password_changed",
        "login_password_succeeded",
        "login_password_failed",
        "two_factor_registration_started",
        "two_factor_registered",
        "two_factor_succeeded",
        "two_factor_failed",
        "two_factor_code_replayed",
        "two_factor_locked",
        "two_factor_reset",
        "recovery_codes_issued",
        "recovery_code_used",
        "login_succeeded",
    }
    assert required <= set(AUDIT_TYPES)


def test_the_chain_check_reads_page_by_page_and_still_names_the_tampered_entry(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock, database: DatabaseUnderTest
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 9)
    caught_up(app, read_models)
    positions = [e.position for e in entries(read_models)]
    view = read_models.views.audit
    assert verify_chain(view, "acme", page=2) == ChainReport("acme", len(positions), None)

    # The first entry of the third page of two.
    raw_sql(
        database,
        read_models,
        "UPDATE audit_v1_a SET ip = '198.51.100.9' WHERE position = ?",
        positions[4],
    )

    assert verify_chain(view, "acme", page=2).first_broken_position == positions[4]
    assert verify_chain(view, "acme", page=1000).first_broken_position == positions[4]


def test_a_forged_entry_or_a_moved_chain_head_breaks_the_chain(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock, database: DatabaseUnderTest
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 4)
    caught_up(app, read_models)
    positions = [e.position for e in entries(read_models)]

    # The head held back to an earlier entry: the log's tail no longer matches it.
    raw_sql(
        database,
        read_models,
        "UPDATE audit_v1_a_chain SET position = ? WHERE environment = 'acme'",
        positions[2],
    )
    held_back = read_models.verify_audit_chain("acme")
    raw_sql(
        database,
        read_models,
        "UPDATE audit_v1_a_chain SET position = ? WHERE environment = 'acme'",
        positions[-1],
    )
    assert read_models.verify_audit_chain("acme").intact

    # A forged row after the last real one, chained correctly from it (the chain
    # has no key), but with the head left where the service put it.
    last = entries(read_models)[-1]
    forged_entry = dataclasses.replace(last, position=last.position + 1000, actor="mallory")
    head = read_models.views.audit.chain_head("acme")
    assert head == (last.position, head[1])
    forged_hash = chain_hash(head[1], forged_entry)
    raw_sql(
        database,
        read_models,
        "INSERT INTO audit_v1_a (position, environment, occurred_at, type, username,"
        " username_key, actor, outcome, ip, user_agent, details, hash)"
        " SELECT ?, environment, occurred_at, type, username, username_key, 'mallory',"
        " outcome, ip, user_agent, details, ? FROM audit_v1_a WHERE position = ?",
        forged_entry.position,
        forged_hash,
        last.position,
    )
    forged = read_models.verify_audit_chain("acme")

    assert not held_back.intact
    assert forged.first_broken_position == forged_entry.position


# ----- reading events and writing the chain fast, exactly as before -----

AGGREGATES = (
    Environment,
    UserCredential,
    UnknownUserLogin,
    ServiceCredential,
    FederatedLogin,
    IdentityLink,
    RejectedCallback,
)
AWKWARD = 'Zoë "q" \\ \t\n\x1f\x7f \u2028 \U0001f600 <&>'
EVENT_CLASSES = [
    member
    for aggregate in AGGREGATES
    for member in vars(aggregate).values()
    if isinstance(member, type) and getattr(member, "TOPIC", None) in RULES
]


@pytest.fixture(scope="module")
def mapper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mapper[UUID]]:
    """The application's mapper, with its transcodings; no store is touched."""
    tmp_path = tmp_path_factory.mktemp("mapper")
    database = DatabaseUnderTest("sqlite", f"sqlite:///{tmp_path / 'aero.db'}")
    app = build_application(make_settings(database, tmp_path))
    try:
        yield app.mapper
    finally:
        app.close()


def sample_value(annotation: str, draw: Callable[[st.SearchStrategy[Any]], Any] | None) -> Any:
    """A value for an event field of that annotation: drawn by hypothesis, or a fixed one."""
    offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=9))])
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "str": st.text(),
        "str | None": st.none() | st.text(),
        "int": st.integers() | st.integers(min_value=2**63 - 2, max_value=2**65),
        "bool": st.booleans(),
        "datetime": st.datetimes(timezones=offsets),
        "frozenset[str]": st.frozensets(st.text()),
    }
    fixed = {
        "str": AWKWARD,
        "str | None": AWKWARD,
        "int": 7,
        "bool": True,
        "datetime": datetime(2026, 3, 3, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        "frozenset[str]": frozenset({"b", "a", AWKWARD}),
    }
    return fixed[annotation] if draw is None else draw(strategies[annotation])


def stored(
    mapper: Mapper[UUID],
    cls: type[Any],
    draw: Callable[[st.SearchStrategy[Any]], Any] | None = None,
) -> Notification:
    values: dict[str, Any] = {"originator_id": uuid4(), "originator_version": 3}
    for field in dataclasses.fields(cls):
        if field.name == "originator_topic":
            values[field.name] = "aero:UserCredential"
        elif field.name not in values:
            values[field.name] = sample_value(str(field.type), draw)
    record = mapper.to_stored_event(cls(**values))
    return Notification(
        id=42,
        originator_id=record.originator_id,
        originator_version=record.originator_version,
        topic=record.topic,
        state=record.state,
    )


def same_event(found: Any, expected: Any) -> None:
    assert type(found) is type(expected)
    assert vars(found) == vars(expected)
    assert {k: type(v) for k, v in vars(found).items()} == {
        k: type(v) for k, v in vars(expected).items()
    }
    assert {k: v.utcoffset() for k, v in vars(found).items() if isinstance(v, datetime)} == {
        k: v.utcoffset() for k, v in vars(expected).items() if isinstance(v, datetime)
    }


def library_mapper(mapper: Mapper[UUID]) -> Mapper[UUID]:
    """A mapper with the library's own JSONTranscoder and the application's transcodings."""
    transcoder = JSONTranscoder()
    for transcoding in mapper.transcoder.names.values():  # type: ignore[attr-defined]
        transcoder.register(transcoding)
    return Mapper(transcoder, cipher=mapper.cipher, compressor=mapper.compressor)


def test_the_orjson_transcoder_reads_every_audit_topic_as_the_librarys_does(
    mapper: Mapper[UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {cls.TOPIC for cls in EVENT_CLASSES} == set(RULES)
    assert type(mapper.transcoder) is OrjsonTranscoder
    stored_events = [stored(mapper, cls) for cls in EVENT_CLASSES]
    expected = [library_mapper(mapper).to_domain_event(n) for n in stored_events]

    class Refuse:
        def decode(self, text: str) -> None:
            raise AssertionError("the library's json decoder read an event")

    monkeypatch.setattr(mapper.transcoder, "decoder", Refuse())
    for notification, event in zip(stored_events, expected, strict=True):
        same_event(mapper.to_domain_event(notification), event)


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_the_orjson_transcoder_agrees_with_the_librarys_on_any_field_values(
    mapper: Mapper[UUID], data: st.DataObject
) -> None:
    notification = stored(mapper, data.draw(st.sampled_from(EVENT_CLASSES)), data.draw)
    same_event(
        mapper.to_domain_event(notification), library_mapper(mapper).to_domain_event(notification)
    )


class ReversingCipher(Cipher):
    """Stands in for AES: all that matters is that the stored bytes are not JSON."""

    def __init__(self, environment: Any = None) -> None:
        pass

    def encrypt(self, plaintext: bytes) -> bytes:
        return plaintext[::-1]

    def decrypt(self, ciphertext: bytes) -> bytes:
        return ciphertext[::-1]


class Versioned(AeroAggregate.Event):
    """An event class at version 2 whose stored version-1 state the mapper upcasts."""

    class_version = 2
    note: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["note"] = "upcast"


def test_what_orjson_would_read_otherwise_is_read_by_the_librarys_decoder(
    mapper: Mapper[UUID],
) -> None:
    plain = stored(mapper, UserCredential.CodeRejected)
    for other in (
        Mapper(mapper.transcoder, cipher=ReversingCipher()),
        Mapper(mapper.transcoder, compressor=ZlibCompressor()),
    ):
        record = other.to_stored_event(mapper.to_domain_event(plain))
        notification = dataclasses.replace(plain, state=record.state)
        same_event(other.to_domain_event(notification), mapper.to_domain_event(plain))

    beyond_64_bits = stored(mapper, UserCredential.AuthenticatorDisabled)
    beyond_64_bits = dataclasses.replace(
        beyond_64_bits,
        state=beyond_64_bits.state.replace(
            b'"total_failures":7', b'"total_failures":' + str(2**70 + 3).encode()
        ),
    )
    decoded: Any = mapper.to_domain_event(beyond_64_bits)
    assert decoded.total_failures == 2**70 + 3  # orjson would read a float
    same_event(decoded, library_mapper(mapper).to_domain_event(beyond_64_bits))

    version_1 = Notification(
        id=1,
        originator_id=uuid4(),
        originator_version=2,
        topic=get_topic(Versioned),
        state=b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-03T10:00:00+00:00"},'
        b'"actor":null,"ip":null,"user_agent":null}',
    )
    assert mapper.to_domain_event(version_1).note == "upcast"  # type: ignore[attr-defined]

    unknown_type = dataclasses.replace(plain, state=plain.state.replace(b"datetime_iso", b"when"))
    with pytest.raises(MapperDeserialisationError, match="when"):
        mapper.to_domain_event(unknown_type)


def old_canonical(entry: AuditEntry) -> bytes:
    """The chain's canonical form as first written (json.dumps): stored chains were hashed so."""
    content = {
        "position": entry.position,
        "environment": entry.environment,
        "occurred_at": entry.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "type": entry.type,
        "username": entry.username,
        "actor": entry.actor,
        "outcome": entry.outcome,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "details": entry.details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# What an audit rule may put in details: no floats, ints within 64 bits.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(value=JSON_VALUES)
def test_canonical_json_writes_exactly_what_json_dumps_writes(value: Any) -> None:
    assert (
        canonical_json(value)
        == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.mark.parametrize("value", [0.5, [1e-05], {"n": 2**64}, {"n": -(2**63) - 1}, "\ud800"])
def test_canonical_json_refuses_what_orjson_would_not_write_as_json_dumps_does(
    value: Any,
) -> None:
    with pytest.raises(NotCanonicalError):
        canonical_json(value)


def test_canonical_json_writes_every_code_point_as_json_dumps_does() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    value = {"text": text, text[:300]: [text[::-1]]}
    assert (
        canonical_json(value)
        == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@given(
    at=st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=1))]
        )
    )
)
def test_instants_are_written_as_strftime_writes_them(at: datetime) -> None:
    assert utc_text(at) == at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(
    entry=st.builds(
        AuditEntry,
        position=st.integers(min_value=1, max_value=2**62),
        occurred_at=st.datetimes(timezones=st.just(UTC)),
        type=st.sampled_from(AUDIT_TYPES),
        environment=st.text(min_size=1),
        username=st.none() | st.text(),
        actor=st.none() | st.text(),
        outcome=st.sampled_from(["success", "failure"]),
        ip=st.none() | st.text(),
        user_agent=st.none() | st.text(),
        details=st.dictionaries(st.text(), JSON_VALUES, max_size=3),
    )
)
def test_an_entry_hashes_as_it_always_has(entry: AuditEntry) -> None:
    assert canonical(entry) == old_canonical(entry)
    assert chain_hash(GENESIS, entry) == sha256(bytes(32) + old_canonical(entry)).hexdigest()


def test_a_chain_hash_written_before_stays_what_it_was() -> None:
    entry = AuditEntry(
        position=7,
        occurred_at=datetime(2026, 3, 3, 10, 0, 0, tzinfo=UTC),
        type="two_factor_failed",
        environment="acme",
        username="Zoë",
        actor=None,
        outcome="failure",
        ip="203.0.113.7",
        user_agent='a "b"',
        details={"reason": "wrong", "kind": "totp"},
    )
    written = (
        '{"actor":null,"details":{"kind":"totp","reason":"wrong"},"environment":"acme",'
        '"ip":"203.0.113.7","occurred_at":"2026-03-03T10:00:00.000000Z","outcome":"failure",'
        '"position":7,"type":"two_factor_failed","user_agent":"a \\"b\\"","username":"Zoë"}'
    )
    assert canonical(entry) == written.encode()
    # Computed with the json.dumps form (old_canonical) before the chain used orjson.
    assert chain_hash("ab" * 32, entry) == (
        "8bd24b2348d56895116c3a0ee1596aa9307cc94797f6537ba4f7f3ad7f28f86f"
    )


# ----- rebuilding -----


def slot_rows(view: ViewStore) -> dict[str, list[dict[str, Any]]]:
    with view.snapshot() as snapshot:
        return {suffix: list(snapshot.rows(suffix)) for suffix in view.tables}


def slot_indexes(view: ViewStore, slot: str) -> set[str]:
    """The slot's index names, without the slot's letter."""
    if isinstance(view.dialect, SQLiteDialect):
        statement = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        rows = view.query(statement, (view.table(slot),))
        names = {row["name"] for row in rows if not row["name"].startswith("sqlite_autoindex")}
    else:
        rows = view.query(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = ? AND indexname <> ?",
            (view.table(slot), f"{view.table(slot)}_pkey"),
        )
        names = {row["name"] for row in rows}
    return {name.replace(view.table(slot), view.base + "_*", 1) for name in names}


def test_a_rebuild_fills_the_spare_slot_before_it_indexes_it(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    toggle_groups(app, clock, "acme", "bob", 5)
    caught_up(app, read_models)
    view = read_models.views.audit
    live = slot_rows(view)
    indexes = slot_indexes(view, "a")
    assert len(indexes) == 5

    spare = view.prepare_rebuild()
    assert spare == "b"
    assert slot_indexes(view, spare) == set()
    view.index_slot(spare)
    assert slot_indexes(view, spare) == indexes
    with pytest.raises(ValueError, match="live"):
        view.index_slot("a")
    view.drop_slot(spare)

    read_models.rebuild("audit")
    assert slot_indexes(view, "b") == indexes
    assert slot_rows(view) == live


def test_awkward_text_is_stored_and_chained_alike_live_and_rebuilt(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    origin = Origin(actor=AWKWARD, ip="2001:db8::1", user_agent=AWKWARD[::-1])
    with originating(origin):
        make_environment(app)
        app.create_user("acme", "Zoë", PASSWORD, groups=["équipe", 'a"b'])
        app.reset_two_factor("acme", "zoë", AWKWARD)
    caught_up(app, read_models)
    view = read_models.views.audit
    found = entries(read_models)
    assert {(e.actor, e.ip, e.user_agent) for e in found} == {
        (origin.actor, origin.ip, origin.user_agent)
    }
    assert found[-1].details == {"reason": AWKWARD}
    assert found[-2].details == {"groups": ['a"b', "équipe"], "roles": []}
    assert read_models.verify_audit_chain("acme").intact
    live = slot_rows(view)

    read_models.rebuild("audit")
    assert slot_rows(view) == live
    assert read_models.verify_audit_chain("acme").intact


def test_a_rebuild_with_more_users_than_the_owner_cache_holds_is_the_same(
    app: AeroAuth, read_models: LiveReadModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_environment(app)
    for name in ("bob", "carol", "dave"):
        app.create_user("acme", name, PASSWORD)
        app.change_roles("acme", name, ["auditor"])
    caught_up(app, read_models)
    view = read_models.views.audit
    live = slot_rows(view)

    monkeypatch.setattr(OwnerCache, "limit", 2)
    read_models.rebuild("audit", batch_size=3)
    assert slot_rows(view) == live
    assert read_models.verify_audit_chain("acme").intact
