"""Reading stored events fast (orjson, and a mapper that looks up each topic once),
exactly as the library reads them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
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

from application.transcoding import AeroMapper, OrjsonTranscoder
from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application
from projections.audit_rules import RULES
from tests.conftest import DatabaseUnderTest, make_settings
from tests.projections.helpers import (
    AWKWARD,
)

EVENT_CLASSES = [
    member
    for aggregate in (
        Environment,
        UserCredential,
        UnknownUserLogin,
        ServiceCredential,
        FederatedLogin,
        IdentityLink,
        RejectedCallback,
    )
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
    assert type(mapper) is AeroMapper
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
        AeroMapper(mapper.transcoder, cipher=ReversingCipher()),
        AeroMapper(mapper.transcoder, compressor=ZlibCompressor()),
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


def test_events_the_mapper_does_not_build_itself_are_the_librarys(mapper: Mapper[UUID]) -> None:
    """An id stored as a string, a state that records its class's version, a topic
    that names no class: the library's mapper reads them, or raises its error."""
    plain = stored(mapper, UserCredential.CodeRejected)
    expected = library_mapper(mapper).to_domain_event(plain)

    as_text = dataclasses.replace(plain, originator_id=str(plain.originator_id))  # type: ignore[arg-type]
    found: Any = mapper.to_domain_event(as_text)
    assert type(found.originator_id) is UUID
    same_event(found, expected)

    versioned = dataclasses.replace(plain, state=plain.state[:-1] + b',"class_version":1}')
    found = mapper.to_domain_event(versioned)
    assert "class_version" not in vars(found)
    same_event(found, expected)

    not_json = dataclasses.replace(plain, state=b"{not json")
    with pytest.raises(MapperDeserialisationError, match="CodeRejected"):
        mapper.to_domain_event(not_json)

    nowhere = dataclasses.replace(plain, topic="domain.credential:NoSuchEvent")
    with pytest.raises(Exception, match="NoSuchEvent"):
        mapper.to_domain_event(nowhere)
