"""Rebuilding a view from position 0 beside the live one, then switching atomically."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Notification

from projections.batches import PROJECTIONS, ProgressCallback, Projection, apply, process_batch
from projections.store import ViewStore

logger = logging.getLogger("aero_auth.projections")


def rebuild_view(
    app: Application[Any],
    view: ViewStore,
    progress: ProgressCallback | None = None,
    batch_size: int = 1000,
) -> int:
    """Fill the spare slot from position 0 while the live slot keeps serving, then switch.

    The switch happens in one transaction under the view's lock: it first
    brings the spare slot up to the live slot's position, so the view never
    goes back, then points the database views at it. The old slot is dropped
    afterwards. Returns the position the rebuilt view has reached.
    """
    projection = PROJECTIONS[view.name]()
    with view.rebuild_lock():
        spare = view.prepare_rebuild()
        try:
            position = 0
            for batch in _pages(app.recorder, batch_size):
                if batch:
                    position = process_batch(view, projection, app.mapper, batch, slot=spare)
                if progress is not None:
                    last = app.recorder.max_notification_id() or 0
                    progress(position, max(last, position))
            view.index_slot(spare)
            position, old = _switch(app, view, projection, spare, batch_size)
        except BaseException:
            try:
                view.drop_slot(spare)
            except Exception:
                logger.exception("could not drop the unfinished rebuild of %s", view.base)
            raise
        view.drop_slot(old)
        view.optimize()
        logger.info("rebuilt the %s view up to position %d", view.name, position)
        return position


def _pages(recorder: ApplicationRecorder, size: int) -> Iterator[Sequence[Notification]]:
    """Every notification from position 0, ``size`` at a time, ending with a short page.

    From a PostgreSQL server the next page is read in a thread while the
    caller processes this one: psycopg lets go of the GIL while the server
    works. SQLite does its work in this process, and a reading thread there
    costs more in contention for the GIL than it saves (bench/audit_rebuild.py).
    """
    from eventsourcing.postgres import PostgresApplicationRecorder

    def read(after: int) -> Sequence[Notification]:
        return recorder.select_notifications(start=after, limit=size, inclusive_of_start=False)

    if not isinstance(recorder, PostgresApplicationRecorder):
        page = read(0)
        while len(page) == size:
            yield page
            page = read(page[-1].id)
        yield page
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aero-rebuild-read") as reader:
        page = read(0)
        while len(page) == size:
            following = reader.submit(read, page[-1].id)
            yield page
            page = following.result()
        yield page


def _switch(
    app: Application[Any], view: ViewStore, projection: Projection, spare: str, batch_size: int
) -> tuple[int, str]:
    with view.transaction() as tx:
        old = tx.active
        if old == spare:
            raise RuntimeError(f"{view.base}: the spare slot went live during the rebuild")
        live, done = tx.position(old), tx.position(spare)
        writer = view.writer(tx, spare)
        position = done
        while position < live:
            batch = app.recorder.select_notifications(
                start=position, limit=batch_size, stop=live, inclusive_of_start=False
            )
            if not batch:
                break
            position = apply(view.name, projection, app.mapper, writer, batch, position)
        if position > done:
            tx.track(spare, position)
        tx.activate(spare)
        return position, old
