"""The exit statuses every ``aero-auth`` command shares, and the one way a command fails.

A monitoring job reads the status, so each means the same for every command:

- 0 ``DONE``: done, or checked and intact;
- 1 ``FINDING``: the answer is a finding (a broken hash chain, a view that
  differs, an environment or user that does not exist, one that already does);
- 2 ``USAGE``: the command line is wrong (a bad flag, a malformed or future instant);
- 3 ``CONFIGURATION``: the AERO_* settings cannot be used, or the store they
  name is missing or unreachable.

A command fails with ``fail(message, status)``: one line on stderr, no traceback.
Wrapping its body in ``configuration_errors()`` turns a configuration problem
raised anywhere below into status 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from interfaces.composition import ConfigurationError
from interfaces.keys import KeyConfigurationError

DONE = 0
FINDING = 1
USAGE = 2
CONFIGURATION = 3

SUMMARY = (
    "Exit status, the same for every command: 0 done or intact; 1 a finding (a broken "
    "hash chain, a view that differs, an environment or user not found); 2 usage (a bad "
    "flag or instant); 3 configuration (AERO_* settings unusable, or the store missing "
    "or unreachable)."
)


def fail(message: str, status: int) -> NoReturn:
    """End the command with ``status`` and ``message`` as one line on stderr."""
    typer.echo(f"aero-auth: {message}", err=True)
    raise typer.Exit(code=status)


@contextmanager
def configuration_errors() -> Iterator[None]:
    """Configuration problems raised inside become one line and status 3."""
    try:
        yield
    except (ConfigurationError, KeyConfigurationError) as e:
        fail(f"configuration: {e}", CONFIGURATION)
