"""Opening the configured event store for ``aero-auth investigate``, and its failures.

Every command reads the store as the server is configured (AERO_DATABASE_URL)
and ends with one line on stderr and an exit status when it cannot answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from application.history import History
from application.service import AeroAuth
from domain.errors import (
    AeroError,
    EnvironmentNotFoundError,
    InvalidTimestampError,
    UserNotFoundError,
)
from domain.instants import parse_rfc3339
from interfaces.cli.exits import CONFIGURATION, FINDING, USAGE
from interfaces.cli.exits import fail as fail  # the commands of investigate fail through it
from interfaces.composition import ConfigurationError, build_investigator, load_settings
from interfaces.keys import KeyConfigurationError
from interfaces.settings import Settings
from projections.batches import ProgressCallback

# The shared exit statuses (interfaces/cli/exits.py) under the names these commands use.
NOT_FOUND = FINDING
BAD_INPUT = USAGE

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AtOption = Annotated[
    str, typer.Option("--at", help="The instant, RFC 3339: changes at or before it count.")
]
EnvArgument = Annotated[str, typer.Argument(help="The environment's slug.", show_default=False)]
UserArgument = Annotated[str, typer.Argument(help="The username (any case).", show_default=False)]


def parse_instant(value: str, name: str = "--at") -> datetime:
    """An RFC 3339 instant (``Z`` or any offset), in UTC; anything else is bad input."""
    try:
        return parse_rfc3339(value, name)
    except InvalidTimestampError as e:
        fail(e.detail, BAD_INPUT)


def configured_settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as e:
        fail(f"configuration: {e}", CONFIGURATION)


@contextmanager
def opened_application(settings: Settings | None = None) -> Iterator[AeroAuth]:
    """The configured store's read-only application (the composition root's investigator);
    domain errors become one line and an exit status."""
    try:
        app = build_investigator(settings or configured_settings())
    except (ConfigurationError, KeyConfigurationError) as e:
        fail(f"configuration: {e}", CONFIGURATION)
    except Exception as e:  # the store is unreachable or refuses us: say why, then stop
        fail(f"cannot open the event store: {type(e).__name__}: {e}", CONFIGURATION)
    try:
        yield app
    except (EnvironmentNotFoundError, UserNotFoundError) as e:
        fail(e.detail, NOT_FOUND)
    except AeroError as e:
        fail(e.detail, BAD_INPUT)
    finally:
        app.close()


@contextmanager
def opened_history() -> Iterator[History]:
    with opened_application() as app:
        yield History(app)


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr, shown only on a terminal; yields its (done, total) callback."""
    err = Console(stderr=True)
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance
