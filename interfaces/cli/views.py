"""``aero-auth project``, ``rebuild`` and ``verify-audit``: running and checking the read models."""

from __future__ import annotations

import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from eventsourcing.application import Application
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from domain.errors import EnvironmentNotFoundError
from interfaces.checkpoints import CheckpointError, check_checkpoint, read_checkpoint
from interfaces.cli.exits import FINDING, USAGE, configuration_errors, fail
from interfaces.composition import (
    build_application,
    build_investigator,
    build_views,
    check_store,
    checkpoint_signing_key,
    load_settings,
)
from projections.api import ChainReport
from projections.audit import verify_chain
from projections.batches import ProgressCallback
from projections.live import LiveReadModels
from projections.rebuild import rebuild_view
from projections.verify import MissingViewError, require_built
from projections.views import Views


class ViewName(StrEnum):
    audit = "audit"
    directory = "directory"


def run_projector(
    app: Application[Any],
    views: Views,
    stop_event: threading.Event,
    *,
    batch_size: int = 500,
    poll_interval: float = 0.05,
) -> list[str]:
    """The ``aero-auth project`` worker: keep every view up to date until ``stop_event``.

    Returns the problems that were left when it stopped (empty when clean);
    it also returns once every view has stopped on an event it cannot process.
    Closes ``views``.
    """
    read_models = LiveReadModels(
        app, views, process=True, batch_size=batch_size, poll_interval=poll_interval
    )
    read_models.start()
    try:
        while not stop_event.wait(0.2):
            if read_models.all_stopped():
                break
        return read_models.problems()
    finally:
        read_models.close()


def run_rebuild(
    app: Application[Any], views: Views, view_name: str, progress: ProgressCallback | None = None
) -> int:
    """``aero-auth rebuild <view>``: safe while the service and workers run. Closes ``views``."""
    try:
        views.ensure()
        return rebuild_view(app, views.all()[view_name], progress)
    finally:
        views.close()


def check_audit_chain(views: Views, environment: str) -> ChainReport:
    """``aero-auth verify-audit <environment>`` (SECURITY.md 19). Closes ``views``."""
    try:
        views.ensure()
        return verify_chain(views.audit, environment)
    finally:
        views.close()


def project() -> None:
    """Keep the read models up to date in this process until SIGTERM or Ctrl-C.

    For deployments that run several API processes and one projector. Exits 1
    if a view stopped on an event it cannot process, naming the position.
    """
    with configuration_errors():
        settings = load_settings()
        check_store(settings)
        # A missing key is an error here, never a new one: a key made beside a store
        # whose secrets and chain were made under another could read neither.
        application = build_application(settings, create_keys=False)
        views = build_views(settings, create_keys=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        problems = run_projector(application, views, stop)
    finally:
        application.close()
    for problem in problems:
        print(f"aero-auth project: {problem}", file=sys.stderr)
    if problems:
        raise typer.Exit(code=1)


def rebuild(
    view: Annotated[ViewName, typer.Argument(help="the view to rebuild from position 0")],
) -> None:
    """Rebuild one view from position 0 into new tables, then switch over.

    The live view keeps serving until the switch; safe while the service runs.
    """
    with configuration_errors():
        settings = load_settings()
        check_store(settings)
        application = build_application(settings, create_keys=False)
        views = build_views(settings, create_keys=False)
    try:
        with Progress(
            TextColumn(f"rebuilding {view.value}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as progress:
            task = progress.add_task("rebuild", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            position = run_rebuild(application, views, view.value, advance)
    finally:
        application.close()
    print(f"rebuilt the {view.value} view up to position {position}")


def verify_audit(
    environment: Annotated[str, typer.Argument(help="the environment's slug")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="a file of `aero-auth audit checkpoint`: the chain must extend it",
        ),
    ] = None,
) -> None:
    """Check the audit log's keyed hash chain (SECURITY.md 19); exit 1 naming the first broken
    entry, when the chain does not extend --checkpoint or its signature is bad, or for an
    environment that does not exist; 3 for a store that does not.
    """
    with configuration_errors():
        settings = load_settings()
        investigator = build_investigator(settings)  # refuses a store that does not exist
    try:
        investigator.environment(environment)
    except EnvironmentNotFoundError as e:
        fail(e.detail, FINDING)
    finally:
        investigator.close()
    with configuration_errors():
        views = build_views(settings, pool_size=2, create_keys=False)
        trusted = checkpoint_signing_key(settings, create=False)
    try:
        require_built(views)
    except MissingViewError as e:
        views.close()
        fail(str(e), FINDING)
    if checkpoint is not None:
        try:
            fields = read_checkpoint(checkpoint.read_text())
        except (OSError, CheckpointError) as e:
            views.close()
            fail(f"{checkpoint}: {e}", USAGE)
        try:
            result = check_checkpoint(
                views.audit, environment, fields, None if trusted is None else trusted.public_key()
            )
        finally:
            views.close()
        if not result.ok:
            fail(f"{environment}: {result.reason}", FINDING)
        print(f"{environment}: {result.reason}")
        return
    report = check_audit_chain(views, environment)
    if report.intact:
        print(f"{environment}: {report.entries_checked} entries, hash chain intact")
        return
    print(
        f"{environment}: hash chain broken at position {report.first_broken_position} "
        f"({report.entries_checked} entries checked)",
        file=sys.stderr,
    )
    raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("project")(project)
    app.command("rebuild")(rebuild)
    app.command("verify-audit")(verify_audit)
