"""The view runner: one thread per view, feeding it batches from its source.

Each runner takes notifications from a source in batches and records each
batch, with its tracking position, in one transaction (projections/batches.py).
With a lease (projections/lease.py) it stands by while another process
projects the view, and takes over when that process lets go.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from math import inf
from time import monotonic
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from projections.batches import (
    TRANSIENT_ERRORS,
    Projection,
    UnprocessableEventError,
    process_batch,
)
from projections.lease import Lease
from projections.sources import Source
from projections.store import ViewStore

logger = logging.getLogger("aero_auth.projections")

# Positions between refreshes of the planner's statistics (ViewStore.optimize).
OPTIMIZE_EVERY = 50_000
# Under load, at most one batch per view this often (ViewRunner._between_batches).
BATCH_INTERVAL = 0.05


class ViewRunner:
    """Feeds one view from its source until stopped or an event cannot be processed."""

    def __init__(
        self,
        view: ViewStore,
        projection: Projection,
        mapper: Mapper[UUID],
        source: Callable[[int], Source],
        batch_size: int,
        position: int,
        on_progress: Callable[[], None],
        lease: Lease | None = None,
        standby_interval: float = 1.0,
        batch_interval: float = 0.0,
    ) -> None:
        self.view = view
        self.projection = projection
        self.mapper = mapper
        self.batch_size = batch_size
        self.position = position
        self.error: str | None = None
        self.problem: str | None = None
        self._optimized_at = position
        self._on_progress = on_progress
        self._lease = lease
        self._standby_interval = standby_interval
        self._batch_interval = batch_interval
        # Set by kick() and stop(): ends a wait between batches at once.
        self._hurry = threading.Event()
        self._open_source = source
        # None while another process holds the view's lease and this one stands by.
        self.source: Source | None = None if lease is not None else source(position)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"aero-{view.name}-projection", daemon=True
        )

    @property
    def stopped(self) -> bool:
        return self.error is not None

    def start(self) -> None:
        self._thread.start()

    @property
    def projecting(self) -> bool:
        """False while another process projects this view and this one stands by."""
        return self.source is not None

    def kick(self) -> None:
        self._hurry.set()
        if self.source is not None:
            self.source.kick()

    def stop(self) -> None:
        self._stop.set()
        self._hurry.set()
        if self.source is not None:
            self.source.kick()  # a polling source's wait ends now; the thread closes it

    def join(self) -> None:
        self._thread.join(timeout=10)

    def _take_over(self) -> bool:
        """Stand by until this process holds the view's lease; False if stopped first."""
        assert self._lease is not None
        delay = self._standby_interval
        while not self._stop.is_set():
            try:
                if self._lease.try_acquire():
                    # The last holder moved the view on: start where it stopped.
                    self.position = max(self.position, self.view.position())
                    self.source = self._open_source(self.position)
                    if self._stop.is_set():
                        self.source.close()
                        return False
                    logger.info("%s view: this process projects it now", self.view.name)
                    self._on_progress()
                    return True
                self.problem, delay = None, self._standby_interval
            except TRANSIENT_ERRORS as e:
                self.problem = f"{self.view.name} view: cannot take the projector lease: {e}"
                logger.warning(self.problem)
                delay = min(delay * 2, 5.0)
            self._stop.wait(delay)
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.source is None and not self._take_over():
                    return
                try:
                    lost = self._project()
                finally:
                    assert self.source is not None
                    self.source.close()
                if not lost:
                    return
                logger.warning("%s view: lost the projector lease; standing by", self.view.name)
                self.source = None
        except Exception as e:
            # Not an event it cannot process (that stops in _project): say so, or the
            # runner would look like one standing by, with nobody projecting.
            self.error = f"{self.view.name} view stopped: {type(e).__name__}: {e}"
            logger.exception(self.error)
            self._on_progress()
        finally:
            # Stopped, or stopped by an event it cannot process: another process may
            # take the view over (and, on such an event, report it in its turn).
            if self._lease is not None:
                self._lease.release()

    def _project(self) -> bool:
        """Record batches until stopped; True if the lease was lost meanwhile."""
        assert self.source is not None
        pending: list[Notification] = []
        delay = 0.1
        checked = monotonic()
        recorded_at = -inf
        while not self._stop.is_set():
            try:
                if self._lease is not None and monotonic() - checked >= self._standby_interval:
                    checked = monotonic()
                    if not self._lease.held():
                        return True
                if not pending:
                    self._between_batches(recorded_at)
                    pending = self.source.next_batch(self.batch_size, timeout=0.1)
                if pending:
                    started = monotonic()
                    self._advance(process_batch(self.view, self.projection, self.mapper, pending))
                    # A full batch means more is waiting: no pause before the next.
                    recorded_at = started if len(pending) < self.batch_size else -inf
                    pending = []
                self.problem, delay = None, 0.1
            except UnprocessableEventError as e:
                self._fail_at(e, pending)
                return False
            except TRANSIENT_ERRORS as e:
                self.problem = f"{self.view.name} view: database error, retrying: {e}"
                logger.warning(self.problem)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception as e:
                self.error = (
                    f"{self.view.name} view stopped after position {self.position}: "
                    f"{type(e).__name__}: {e}"
                )
                logger.exception(self.error)
                self._on_progress()
                return False
        return False

    def _between_batches(self, recorded_at: float) -> None:
        """Under load, at most one batch per ``batch_interval``.

        Each batch is a transaction of the view, a handful of round trips on
        PostgreSQL whatever its size; with one per commit, each login paid
        for two of them per view. Waiting out the rest of the interval
        since the last batch began lets the commits of that interval share
        one. An idle view waits for nothing: its last batch is long past. A
        kick (a request waiting to read its own write) or a stop ends the wait.
        """
        rest = recorded_at + self._batch_interval - monotonic()
        if rest > 0:
            self._hurry.wait(rest)
        self._hurry.clear()

    def _fail_at(self, error: UnprocessableEventError, batch: list[Notification]) -> None:
        # Keep what precedes the bad event, so the view stops exactly before it.
        before = [n for n in batch if n.id < error.position]
        try:
            if before:
                self._advance(process_batch(self.view, self.projection, self.mapper, before))
        except Exception:
            logger.exception("%s view: cannot record the events before it", self.view.name)
        self.error = str(error)
        logger.error(self.error)
        self._on_progress()

    def _advance(self, position: int) -> None:
        self.position = max(self.position, position)
        self._on_progress()
        if self.position - self._optimized_at >= OPTIMIZE_EVERY:
            self.view.optimize()
            self._optimized_at = self.position
