"""``aero-auth investigate replay`` and ``verify``: copies of the read models built from
the events, as at an instant into a new SQLite file, or to compare with the live views."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from domain.instants import rfc3339
from interfaces.cli.exits import CONFIGURATION
from interfaces.cli.investigate_render import emit, verify_fields, verify_tables
from interfaces.cli.investigation import (
    BAD_INPUT,
    NOT_FOUND,
    JsonOption,
    configured_settings,
    fail,
    opened_application,
    parse_instant,
    progress_bar,
)
from interfaces.composition import Store, audit_chain_key, build_views, describe_store
from interfaces.keys import KeyConfigurationError
from projections.replay import replay_until
from projections.verify import MissingViewError, require_built, verify_views


def _target(into: str) -> Path:
    """The new file named by --into: a SQLite URL (or a plain path) that does not exist yet."""
    if "://" in into:
        try:
            store = Store.from_url(into)
        except ValueError as e:
            fail(f"--into: {e}", BAD_INPUT)
        if store.kind != "sqlite" or store.sqlite_path is None:
            fail(
                f"--into must name a new SQLite file, e.g. sqlite:///case-4711.db, not {into!r}",
                BAD_INPUT,
            )
        path = store.sqlite_path
    else:
        path = Path(into)
    if path.exists():
        fail(f"{path} already exists: replay writes only to a new file", BAD_INPUT)
    if not path.parent.is_dir():
        fail(f"no directory {path.parent} for {path.name}", BAD_INPUT)
    return path


def replay(
    until: Annotated[
        str,
        typer.Option(
            "--until", help="RFC 3339: events at or before it are replayed.", show_default=False
        ),
    ],
    into: Annotated[
        str,
        typer.Option(
            "--into",
            help="The new SQLite file: sqlite:///case-4711.db (relative), "
            "sqlite:////abs/case.db, or a plain path. Never overwritten.",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Copy every read model as it stood at an instant into a new SQLite file, for sqlite3.

    The same projections that keep the live views are fed every event that
    occurred at or before --until, judged by each event's own timestamp (not
    by commit order, which can differ by a hair across aggregates); the store
    and its views are only read. Instants in the file are
    RFC 3339 text in UTC with microseconds, which sorts as text; flags are 0
    or 1; groups, roles and details are JSON text. Tables:

    - replay: until, last_position (the store's last event when the replay
    started), events (replayed), later_events (left out), source (the event
    store), made_at.

    - policies: environment, require_2fa, groups (2FA only for these; [] is
    everyone).

    - users: environment, username, groups, roles, required, rule ("all",
    "group:NAME" or NULL), registered, locked_until (the code step's lock if
    still in force at --until), user_id.

    - audit_log: position, occurred_at, environment, type, username, actor,
    outcome, ip, user_agent, details, hash.

    - audit_chain: environment, entries, last_position, last_hash.

    Each environment's entries form a keyed chain, checkable offline with the
    audit key (AERO_AUDIT_KEY, AERO_AUDIT_KEY_FILE or audit.key in the data
    directory): in position order, hash = HMAC-SHA256(audit key, bytes of the
    previous hex hash, or 32 zero bytes first || canonical JSON of position,
    environment, occurred_at, type, username, actor, outcome, ip, user_agent,
    details (details parsed) and event; keys sorted, no spaces, UTF-8). event
    is sha256(topic || 0x00 || the stored event's state bytes) in hex: what
    the event beneath the entry said.
    """
    instant = parse_instant(until, "--until")
    target = _target(into)
    settings = configured_settings()
    with opened_application(settings) as app:  # refuses a store that does not exist
        try:
            # The first start creates this key; a store no server has started yet gets
            # it here, so its copy's chain is the one the live view will have.
            chain_key = audit_chain_key(settings)
        except KeyConfigurationError as e:
            fail(f"configuration: {e}", CONFIGURATION)
        now = app.clock.now()
        if instant > now:
            fail(f"--until {rfc3339(instant)} is in the future (now {rfc3339(now)})", BAD_INPUT)
        try:
            with progress_bar("replaying events") as advance:
                summary = replay_until(
                    app, instant, target, describe_store(settings), chain_key, advance
                )
        except FileExistsError:
            fail(f"{target} appeared during the replay: it was left alone", BAD_INPUT)
        except OSError as e:
            fail(f"cannot write {target}: {e}", BAD_INPUT)
    data = {
        "file": str(summary.path),
        "until": summary.until,
        "events": summary.events,
        "later_events": summary.later_events,
        "last_position": summary.last_position,
        "environments": summary.environments,
        "users": summary.users,
        "audit_entries": summary.audit_entries,
    }
    emit(data, as_json, f"read models at {rfc3339(instant)} in {summary.path}")


def verify(
    max_differences: Annotated[
        int, typer.Option("--max-differences", min=1, help="List at most this many differences.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Rebuild every read model from position 0 and compare it with the live one, row for row.

    Each live view is compared as it stood at one committed state, against a
    rebuild up to exactly that state's position, so the service may keep
    running. Also checks every environment's audit hash chain. The rebuilds
    go to a temporary directory (TMPDIR); the store and its views are only
    read. Exit status: 0 when everything is equal and every chain intact,
    1 otherwise (differences are listed: view, table, key, column, live,
    rebuilt).
    """
    settings = configured_settings()
    with opened_application(settings) as app:
        try:
            live = build_views(settings, pool_size=2, create_keys=False)
        except KeyConfigurationError as e:
            # No audit key: views never built have none yet, and that is the finding.
            probe = build_views(settings, pool_size=1, chain_key=bytes(32))
            try:
                require_built(probe)
            except MissingViewError as missing:
                fail(str(missing), NOT_FOUND)
            finally:
                probe.close()
            fail(f"configuration: {e}", BAD_INPUT)
        try:
            require_built(live)
        except MissingViewError as e:
            live.close()
            fail(str(e), NOT_FOUND)
        try:
            with (
                tempfile.TemporaryDirectory(prefix="aero-verify-") as scratch,
                progress_bar("rebuilding views") as advance,
            ):
                report = verify_views(app, live, Path(scratch), advance, max_differences)
        finally:
            live.close()
    emit(verify_fields(report), as_json, lambda: verify_tables(report))
    if not report.clean:
        raise typer.Exit(code=1)
