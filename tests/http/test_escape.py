"""Log escaping: the fast path for plain values agrees with looking at every character."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from interfaces.http.observability import escape, escape_each


@given(st.text(max_size=80))
def test_any_text_is_escaped_as_character_by_character(text: str) -> None:
    assert escape(text) == escape_each(text)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=80))
def test_ascii_with_controls_and_backslashes(text: str) -> None:
    assert escape(text) == escape_each(text)


def test_examples() -> None:
    assert escape("/v1/environments/acme/login") == "/v1/environments/acme/login"
    assert escape("bob\nINFO forged") == "bob\\x0aINFO forged"
    assert escape("a\\b") == "a\\\\b"
    assert escape("tab\there") == "tab\\x09here"
    assert escape("del\x7f") == "del\\x7f"
    assert escape("zero\u200bwidth") == "zero\\u200bwidth"
    assert escape("café") == "café"
    assert escape("x" * 300) == "x" * 200 + "..."
