"""Checking the live views: rebuild each from position 0 and compare them row for row.

The live views keep moving while a check runs, so each is compared as one
committed state of it (``ViewStore.snapshot``), against a copy rebuilt up to
exactly that state's tracked position. Nothing is written to the event store
or to the live views; the copies live in SQLite files in a scratch directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from projections.api import ChainReport
from projections.audit import verify_chain
from projections.batches import ProgressCallback
from projections.replay import feed
from projections.views import Views, missing_views, sqlite_views


class MissingViewError(LookupError):
    """A live view was never built: there is nothing to check."""


@dataclass(frozen=True)
class Difference:
    """One value that differs; ``column`` None: the row exists on one side only."""

    view: str
    table: str
    key: dict[str, Any]
    column: str | None
    live: Any
    rebuilt: Any


@dataclass
class VerifyReport:
    positions: dict[str, int]
    chains: list[ChainReport]
    differences: list[Difference] = field(default_factory=list)
    difference_count: int = 0

    def add(self, difference: Difference, limit: int) -> None:
        if self.difference_count < limit:
            self.differences.append(difference)
        self.difference_count += 1

    @property
    def clean(self) -> bool:
        return self.difference_count == 0 and all(chain.intact for chain in self.chains)


def require_built(views: Views) -> None:
    """MissingViewError if a live view was never built; nothing is created by checking."""
    missing = missing_views(views)
    if missing:
        raise MissingViewError(missing[0])


def verify_views(
    app: Application[Any],
    live: Views,
    scratch_dir: Path,
    progress: ProgressCallback | None = None,
    max_differences: int = 1000,
) -> VerifyReport:
    """Compare every live view with a rebuild; check every environment's audit chain.

    Lists at most ``max_differences`` differences and counts them all.
    """
    scratch = sqlite_views(str(scratch_dir / "verify.db"), live.audit.chain_key)
    try:
        scratch.ensure()
        live_views, rebuilt = live.all(), scratch.all()
        # The long part first, with nothing held open: up to where the live views
        # are now, then to where they got to meanwhile.
        for _ in range(2):
            stops = {name: view.position() for name, view in live_views.items()}
            feed(app, rebuilt, stops, progress=progress)
        report = VerifyReport(positions={}, chains=[])
        for name, view in live_views.items():
            with view.snapshot() as state:
                # Only the last few events: whatever the view took in since.
                feed(app, {name: rebuilt[name]}, {name: state.position})
                with rebuilt[name].snapshot() as copy:
                    report.positions[name] = state.position
                    if copy.position != state.position:
                        mismatch = Difference(
                            name, "tracking", {}, "position", state.position, copy.position
                        )
                        report.add(mismatch, max_differences)
                    for suffix in view.tables:
                        differences = _compare(
                            name,
                            view.base + suffix,
                            view.keys[suffix],
                            state.rows(suffix),
                            copy.rows(suffix),
                        )
                        for difference in differences:
                            report.add(difference, max_differences)
        report.chains = [verify_chain(live.audit, env) for env in _environments(live, scratch)]
        return report
    finally:
        scratch.close()


def _environments(*views: Views) -> list[str]:
    """Every environment with an audit chain, live or rebuilt."""
    found: set[str] = set()
    for audit in (views.audit for views in views):
        with audit.snapshot() as state:
            found.update(row["environment"] for row in state.rows("_chain"))
    return sorted(found)


def _compare(
    view: str,
    table: str,
    key: tuple[str, ...],
    live: Iterable[dict[str, Any]],
    rebuilt: Iterable[dict[str, Any]],
) -> Iterator[Difference]:
    """Merge two key-ordered row streams (``Snapshot.rows``) and yield what differs."""

    def key_of(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[column] for column in key)

    def named(row: dict[str, Any]) -> dict[str, Any]:
        return {column: row[column] for column in key}

    live_rows, rebuilt_rows = iter(live), iter(rebuilt)
    left, right = next(live_rows, None), next(rebuilt_rows, None)
    while left is not None or right is not None:
        if right is None or (left is not None and key_of(left) < key_of(right)):
            assert left is not None
            yield Difference(view, table, named(left), None, left, None)
            left = next(live_rows, None)
        elif left is None or key_of(right) < key_of(left):
            yield Difference(view, table, named(right), None, None, right)
            right = next(rebuilt_rows, None)
        else:
            for column in sorted(left.keys() | right.keys()):
                if left.get(column) != right.get(column):
                    yield Difference(
                        view, table, named(left), column, left.get(column), right.get(column)
                    )
            left, right = next(live_rows, None), next(rebuilt_rows, None)
