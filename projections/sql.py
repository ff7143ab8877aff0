"""Statements built from names this code chose: identifiers checked, values as parameters."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class Raw(str):
    """A fragment of SQL written in this code (column lists, conditions), never input."""

    __slots__ = ()


def sql(template: str, **names: str) -> str:
    """Fill names and Raw fragments into a statement; values always go in as parameters."""
    for name in names.values():
        if not isinstance(name, Raw) and not _IDENTIFIER.match(name):
            raise ValueError(f"not a safe SQL identifier: {name!r}")
    return template.format(**names)
