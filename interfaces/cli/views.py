"""``aero-auth project``, ``rebuild`` and ``verify-audit``: running and checking the read models."""

from __future__ import annotations

import signal
import sys
import threading
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from interfaces.composition import build_application
from interfaces.settings import from_environment
from projections.runtime import check_audit_chain, run_projector, run_rebuild


class ViewName(StrEnum):
    audit = "audit"
    directory = "directory"


def project() -> None:
    """Keep the read models up to date in this process until SIGTERM or Ctrl-C.

    For deployments that run several API processes and one projector. Exits 1
    if a view stopped on an event it cannot process, naming the position.
    """
    application = build_application(from_environment())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        problems = run_projector(application, stop)
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
    application = build_application(from_environment())
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

            position = run_rebuild(application, view.value, advance)
    finally:
        application.close()
    print(f"rebuilt the {view.value} view up to position {position}")


def verify_audit(
    environment: Annotated[str, typer.Argument(help="the environment's slug")],
) -> None:
    """Check the audit log's hash chain (SECURITY.md 19); exit 1 naming the first broken entry."""
    application = build_application(from_environment())
    try:
        report = check_audit_chain(application, environment)
    finally:
        application.close()
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
