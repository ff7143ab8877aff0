"""How events are written to and read from the store: JSON, read with orjson.

``AeroAuth`` names ``OrjsonTranscoder`` in the library's ``TRANSCODER_TOPIC``
setting, so every read of the application (loads, snapshots, the views'
projections, rebuilds) goes through the library's own mapper with it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding


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
