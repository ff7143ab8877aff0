"""The audit log's hash chain: it names the first tampered entry, and an entry
hashes as it always has."""

from __future__ import annotations

import dataclasses
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha256
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.clock import FixedClock
from application.service import AeroAuth
from projections.api import AuditEntry, ChainReport
from projections.audit import verify_chain
from projections.audit_chain import (
    GENESIS,
    KeyedHash,
    NotCanonicalError,
    canonical,
    canonical_json,
    chain_hash,
    event_digest,
    utc_text,
)
from projections.audit_rules import AUDIT_TYPES
from projections.live import LiveReadModels
from tests.conftest import DatabaseUnderTest
from tests.projections.helpers import (
    entries,
    make_environment,
    toggle_groups,
)
from tests.support import (
    PASSWORD,
    caught_up,
    raw_sql,
)


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
    delete = "DELETE FROM audit_v2_a WHERE position = ?"
    raw_sql(database, read_models, delete, positions[-1])
    assert read_models.verify_audit_chain("acme").first_broken_position == positions[-1]

    raw_sql(
        database,
        read_models,
        "UPDATE audit_v2_a SET details = ? WHERE position = ?",
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
    update = "UPDATE audit_v2_a SET details = ? WHERE position = ?"
    raw_sql(database, read_models, update, details, positions[1])
    report = read_models.verify_audit_chain("acme")
    assert (report.entries_checked, report.first_broken_position) == (2, positions[1])


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
        "UPDATE audit_v2_a SET ip = '198.51.100.9' WHERE position = ?",
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
        "UPDATE audit_v2_a_chain SET position = ? WHERE environment = 'acme'",
        positions[2],
    )
    held_back = read_models.verify_audit_chain("acme")
    raw_sql(
        database,
        read_models,
        "UPDATE audit_v2_a_chain SET position = ? WHERE environment = 'acme'",
        positions[-1],
    )
    assert read_models.verify_audit_chain("acme").intact

    # A forged row after the last real one, chained correctly from it (as only a
    # holder of the audit key could), but with the head left where the service put it.
    last = entries(read_models)[-1]
    forged_entry = dataclasses.replace(last, position=last.position + 1000, actor="mallory")
    head = read_models.views.audit.chain_head("acme")
    assert head == (last.position, head[1])
    audit = read_models.views.audit
    event = audit.chained("acme", last.position - 1, last.position, 1)[0][1]
    forged_hash = chain_hash(audit.chain_key, head[1], forged_entry, event)
    raw_sql(
        database,
        read_models,
        "INSERT INTO audit_v2_a (position, environment, occurred_at, type, username,"
        " username_key, actor, outcome, ip, user_agent, details, event, hash)"
        " SELECT ?, environment, occurred_at, type, username, username_key, 'mallory',"
        " outcome, ip, user_agent, details, event, ? FROM audit_v2_a WHERE position = ?",
        forged_entry.position,
        forged_hash,
        last.position,
    )
    forged = read_models.verify_audit_chain("acme")

    assert not held_back.intact
    assert forged.first_broken_position == forged_entry.position


KEY = b"audit-key-for-tests-32-bytes-...."


def old_canonical(entry: AuditEntry, event: str) -> bytes:
    """The chain's canonical form as the documentation gives it (json.dumps)."""
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
        "event": event,
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
def test_an_entry_hashes_as_the_documented_formula_says(entry: AuditEntry) -> None:
    event = sha256(b"x").hexdigest()
    assert canonical(entry, event) == old_canonical(entry, event)
    expected = hmac.new(KEY, bytes(32) + old_canonical(entry, event), sha256).hexdigest()
    assert chain_hash(KEY, GENESIS, entry, event) == expected


def test_a_chain_hash_is_keyed_and_records_the_event() -> None:
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
    event = event_digest("topic", b"{}")
    assert event == sha256(b"topic\x00{}").hexdigest()
    written = (
        '{"actor":null,"details":{"kind":"totp","reason":"wrong"},"environment":"acme",'
        f'"event":"{event}",'
        '"ip":"203.0.113.7","occurred_at":"2026-03-03T10:00:00.000000Z","outcome":"failure",'
        '"position":7,"type":"two_factor_failed","user_agent":"a \\"b\\"","username":"Zoë"}'
    )
    assert canonical(entry, event) == written.encode()
    keyed = chain_hash(KEY, "ab" * 32, entry, event)
    assert keyed == hmac.new(KEY, bytes.fromhex("ab" * 32) + written.encode(), sha256).hexdigest()
    # Without the key the hash cannot be recomputed: another key, another hash.
    assert chain_hash(b"o" * 32, "ab" * 32, entry, event) != keyed
    assert chain_hash(KEY, "ab" * 32, entry, event_digest("topic", b"{ }")) != keyed


@given(key=st.binary(min_size=0, max_size=200), message=st.binary(max_size=2000))
def test_the_keyed_hash_is_hmac_sha256_for_any_key_and_message(key: bytes, message: bytes) -> None:
    # Keys longer than SHA-256's 64-byte block are hashed first, as RFC 2104 says.
    assert KeyedHash(key).hexdigest(message) == hmac.new(key, message, sha256).hexdigest()


def test_a_keyed_hash_hashes_each_message_afresh() -> None:
    keyed = KeyedHash(KEY)
    first = keyed.hexdigest(b"one")
    keyed.hexdigest(b"two")
    assert keyed.hexdigest(b"one") == first != keyed.hexdigest(b"two")
