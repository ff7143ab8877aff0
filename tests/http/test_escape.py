"""Log escaping: a client's value stays on its own log line, and reads back as it was sent."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interfaces.http.observability import escape

# What str.splitlines() breaks on: every character a log viewer may treat as a line end.
LINE_BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def unescape(text: str) -> str:
    """The value ``escape`` was given, from its output (no cut)."""
    return re.sub(
        r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})",
        lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)),
        text,
    )


@given(st.text(max_size=80))
def test_no_character_that_ends_or_hides_a_line_survives_escaping(text: str) -> None:
    escaped = escape(text)
    assert len(escaped.splitlines()) <= 1
    assert not any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        for ch in escaped
    )


@given(st.text(max_size=80))
def test_an_escaped_value_reads_back_as_the_value_sent(text: str) -> None:
    assert unescape(escape(text)) == text


@pytest.mark.parametrize("separator", LINE_BREAKS)
def test_a_line_separator_cannot_forge_a_log_line(separator: str) -> None:
    escaped = escape(f"bob{separator}INFO forged admin login")
    assert escaped.splitlines() == [escaped]
    code = ord(separator)
    shown = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    assert escaped == f"bob{shown}INFO forged admin login"


def test_examples() -> None:
    assert escape("/v1/environments/acme/login") == "/v1/environments/acme/login"
    assert escape("bob\nINFO forged") == "bob\\x0aINFO forged"
    assert escape("a\\b") == "a\\\\b"
    assert escape("a\\x0ab") == "a\\\\x0ab"  # an escape sent as text stays text
    assert escape("tab\there") == "tab\\x09here"
    assert escape("del\x7f") == "del\\x7f"
    assert escape("zero\u200bwidth") == "zero\\u200bwidth"
    assert escape("line\u2028para\u2029end") == "line\\u2028para\\u2029end"
    assert escape("tag\U000e0041") == "tag\\U000e0041"
    assert escape("café") == "café"
    assert escape("x" * 300) == "x" * 200 + "..."
