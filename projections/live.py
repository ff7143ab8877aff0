"""The live read models of one process: views kept up to date, and waits for a position.

With ``process=True`` the process runs a runner per view (projections/runner.py);
with ``process=False`` it only reads the views, which a separate ``aero-auth
project`` worker keeps up to date, and follows their positions in the database.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from functools import partial
from time import monotonic
from typing import Any

from eventsourcing.application import Application

from projections.api import ReadModels, ViewStatus
from projections.batches import PROJECTIONS, TRANSIENT_ERRORS, ProgressCallback
from projections.lease import lease_holder, projector_lease
from projections.queries import ViewQueries
from projections.rebuild import rebuild_view
from projections.runner import BATCH_INTERVAL, ViewRunner
from projections.sources import open_source
from projections.views import Views

logger = logging.getLogger("aero_auth.projections")


class LiveReadModels(ViewQueries):
    """The read models of one process (projections.api.ReadModels): the views' queries,
    and the runners that keep the views up to date.

    With ``process=True`` (the default) this process keeps the views up to
    date itself; with ``process=False`` it only reads, and a separate
    ``aero-auth project`` worker (``run_projector``) keeps them up to date.
    Of several processes that may project, one per view does, the holder of
    the view's lease (projections/lease.py); the others stand by and read the
    view's position from the database until they take over. Even two at once
    stay correct: the views' locks and tracking keep each event recorded once.
    """

    def __init__(
        self,
        app: Application[Any],
        views: Views,
        *,
        process: bool = True,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        standby_interval: float = 1.0,
        batch_interval: float = BATCH_INTERVAL,
    ) -> None:
        clock = getattr(app, "clock", None)
        super().__init__(views, None if clock is None else clock.now)
        self.app = app
        self.standby_interval = standby_interval
        self.batch_interval = batch_interval
        self.process = process
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._changed = threading.Condition()
        self._positions: dict[str, int] = dict.fromkeys(views.all(), 0)
        self._runners: dict[str, ViewRunner] = {}
        self._refresh_problem: str | None = None
        self._target = 0
        self._started = False

    # ----- lifecycle -----

    def start(self) -> None:
        self.views.ensure()
        for view in self.views.all().values():
            view.optimize()
        self._target = self.app.recorder.max_notification_id() or 0
        for name, view in self.views.all().items():
            self._positions[name] = view.position()
            if self.process:
                self._runners[name] = ViewRunner(
                    view,
                    PROJECTIONS[name](),
                    self.app.mapper,
                    partial(open_source, self.app.recorder, poll_interval=self.poll_interval),
                    self.batch_size,
                    self._positions[name],
                    self._progressed,
                    lease=projector_lease(view),
                    standby_interval=self.standby_interval,
                    batch_interval=self.batch_interval,
                )
        for runner in self._runners.values():
            runner.start()
        self._started = True

    def close(self) -> None:
        for runner in self._runners.values():
            runner.stop()
        for runner in self._runners.values():
            runner.join()
        self._runners.clear()
        self.views.close()

    def _progressed(self) -> None:
        with self._changed:
            for name, runner in self._runners.items():
                self._positions[name] = max(self._positions[name], runner.position)
            self._changed.notify_all()

    def _elsewhere(self) -> bool:
        """Whether another process keeps some view up to date, so positions are read."""
        return not self.process or not all(r.projecting for r in self._runners.values())

    def _refresh(self) -> None:
        """Read the positions from the database: another process may be doing the work."""
        try:
            positions = {name: view.position() for name, view in self.views.all().items()}
        except TRANSIENT_ERRORS as e:
            self._refresh_problem = f"cannot read the views' positions: {e}"
            return
        self._refresh_problem = None
        with self._changed:
            for name, position in positions.items():
                self._positions[name] = max(self._positions[name], position)
            self._changed.notify_all()

    # ----- state -----

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """True once every view has processed ``position``; False on timeout or a stopped view."""
        deadline = monotonic() + timeout
        while True:
            with self._changed:
                behind = [n for n, p in self._positions.items() if p < position]
                if not behind:
                    return True
                if any(n in self._runners and self._runners[n].stopped for n in behind):
                    return False
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                for name in behind:
                    if name in self._runners:
                        self._runners[name].kick()
                self._changed.wait(min(remaining, 0.05))
            if self._elsewhere():
                self._refresh()

    def is_ready(self) -> bool:
        """Caught up with the store as it was at start, and no view stopped by an error."""
        if not self._started or any(r.stopped for r in self._runners.values()):
            return False
        if self._elsewhere():
            self._refresh()
        with self._changed:
            return all(p >= self._target for p in self._positions.values())

    def problems(self) -> list[str]:
        found = []
        for runner in self._runners.values():
            source_problem = runner.source.problem if runner.source is not None else None
            found += [p for p in (runner.error, runner.problem, source_problem) if p]
        if self._refresh_problem:
            found.append(self._refresh_problem)
        return found

    def status(self) -> list[ViewStatus]:
        """Each view's position, lag and lease holder, read from the stores now."""
        head = self.app.recorder.max_notification_id() or 0
        if self._elsewhere():
            self._refresh()
        positions = self.positions()
        found = []
        for name, view in self.views.all().items():
            position = positions[name]
            runner = self._runners.get(name)
            here = runner is not None and runner.projecting and not runner.stopped
            found.append(
                ViewStatus(
                    name=name,
                    position=position,
                    head=head,
                    lag_events=max(0, head - position),
                    lag_seconds=self._age_of_next(position) if position < head else 0.0,
                    holder="this process" if here else lease_holder(view),
                )
            )
        return found

    def _age_of_next(self, position: int) -> float:
        """Seconds since the first event after ``position`` occurred (by its timestamp)."""
        notifications = self.app.recorder.select_notifications(start=position + 1, limit=1)
        if not notifications:
            return 0.0
        event: Any = self.app.mapper.to_domain_event(notifications[0])
        occurred: datetime = event.timestamp
        clock = getattr(self.app, "clock", None)
        now = clock.now() if clock is not None else datetime.now(UTC)
        return max(0.0, (now - occurred).total_seconds())

    def all_stopped(self) -> bool:
        return bool(self._runners) and all(r.stopped for r in self._runners.values())

    def positions(self) -> dict[str, int]:
        with self._changed:
            return dict(self._positions)

    def projecting(self) -> dict[str, bool]:
        """Per started view: whether this process projects it (holds its lease) or stands by."""
        return {name: runner.projecting for name, runner in self._runners.items()}

    def rebuild(
        self, view_name: str, progress: ProgressCallback | None = None, batch_size: int = 1000
    ) -> int:
        """Rebuild one view from position 0 beside the live one, then switch atomically."""
        position = rebuild_view(self.app, self.views.all()[view_name], progress, batch_size)
        self._refresh()
        return position


# Checked by mypy: LiveReadModels is what the HTTP layer asks for.
_implements: type[ReadModels] = LiveReadModels
