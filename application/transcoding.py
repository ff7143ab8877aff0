"""How events are written to and read from the store: JSON, read with orjson.

``AeroAuth`` names ``OrjsonTranscoder`` in the library's ``TRANSCODER_TOPIC``
setting and ``AeroMapper`` in its ``MAPPER_TOPIC``, so every read of the
application (loads, snapshots, the views' projections, rebuilds) goes through
them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import resolve_topic


class FrozensetAsList(Transcoding):
    """Groups, roles and code hashes are frozensets; JSON has only lists."""

    type = frozenset
    name = "frozenset"

    def encode(self, obj: frozenset[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> frozenset[Any]:
        return frozenset(data)


class OrjsonTranscoder(JSONTranscoder):
    """The library's JSON transcoder, reading with orjson: what it decodes is equal,
    value for value and type for type, to what ``JSONTranscoder`` decodes.

    The library's decoder calls its object hook, a Python function, for every
    JSON object; reading an event took 5.0 us that way and 3.0 with orjson
    (docs/benchmarks.md, change 8). Custom types (``{"_type_": name, "_data_":
    data}``) are revived innermost first, as the hook does, by the registered
    transcodings. Where orjson would read other values (NaN, lone surrogates:
    it refuses them; ints beyond 64 bits: it makes floats of them, so any
    float) the library's decoder reads the bytes instead. Writing is the
    library's: the stored bytes stay as they were.
    """

    def __init__(self) -> None:
        super().__init__()
        self._revivers: dict[str, Callable[[Any], Any]] = {}

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        # DatetimeAsISO.decode asserts a string and calls fromisoformat, which
        # fails on anything else too; the extra call cost a third of an event.
        reviver = (
            datetime.fromisoformat if type(transcoding) is DatetimeAsISO else transcoding.decode
        )
        self._revivers[transcoding.name] = reviver

    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
            return _revive(value, self._revivers) if type(value) in _REVIVED else value
        except _NotExact:
            pass
        except orjson.JSONDecodeError:
            pass  # the library's decoder reads it, or raises its own error
        return super().decode(data)


class _NotExact(ValueError):
    """A parsed value that may not be what json.loads makes of the same text."""


# The parsed values _revive looks at: containers, and floats that may be ints.
_REVIVED = frozenset({dict, list, float})


def _revive(value: Any, revivers: dict[str, Callable[[Any], Any]]) -> Any:
    """What json's object hook makes of a parsed value, innermost first."""
    if type(value) is float:
        raise _NotExact(value)
    if type(value) is list:
        return [_revive(item, revivers) if type(item) in _REVIVED else item for item in value]
    if len(value) == 2 and "_type_" in value and "_data_" in value:
        data = value["_data_"]
        if type(data) in _REVIVED:
            data = _revive(data, revivers)
        name = value["_type_"]
        if type(name) is not str or name not in revivers:
            # The library's hook raises TranscodingNotRegisteredError (or a
            # TypeError): let it, with its own message.
            raise _NotExact(name)
        return revivers[name](data)
    # In place: orjson made the dict for this call alone, and most of its values
    # are strings left as they are (a new dict for each cost a fifth of a read).
    for key, item in value.items():
        if type(item) in _REVIVED:
            value[key] = _revive(item, revivers)
    return value


class AeroMapper(Mapper[UUID]):
    """The library's mapper, with what it looks up for each event looked up once per topic.

    For every event the library's ``to_domain_event`` resolves the topic, finds
    the id convertor (an ``lru_cache`` call, then the convertor's own), reads the
    class's version and pops the stored one: 0.6 us of the 3.2 an audit rebuild
    spends reading an event (docs/benchmarks.md, "What a rebuild reads"). Here a
    topic whose class is at version 1 with UUID ids is resolved once; its events
    are built as the library builds them, from the transcoder's dict. Anything
    else goes the library's way, with its errors: a cipher or compressor, a class
    that upcasts, an id stored as a string, a state that records a version, a
    state the transcoder cannot read. Writing is the library's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct: dict[str, type[Any] | None] = {}

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        topic = stored_event.topic
        try:
            cls = self._direct[topic]
        except KeyError:
            cls = self._direct[topic] = self._direct_class(topic)
        if cls is None or type(stored_event.originator_id) is not UUID:
            return super().to_domain_event(stored_event)
        try:
            state = self.transcoder.decode(stored_event.state)
        except Exception:
            return super().to_domain_event(stored_event)  # raises the library's error
        if type(state) is not dict or "class_version" in state:
            return super().to_domain_event(stored_event)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event  # type: ignore[no-any-return]

    def _direct_class(self, topic: str) -> type[Any] | None:
        """The topic's class, if its events need nothing but building."""
        if self.cipher is not None or self.compressor is not None:
            return None
        try:
            cls = resolve_topic(topic)
        except Exception:
            return None  # the library says why, for each event
        if getattr(cls, "class_version", 1) != 1:
            return None
        if getattr(cls, "originator_id_type", None) is not UUID:
            return None
        return cls  # type: ignore[no-any-return]
