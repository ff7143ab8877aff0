"""Issue 6, benchmark 4: rebuilding the audit view against a raw SELECT of the same events.

Fills a scratch store with about --events events (users with authenticators,
then password-step events spread over them, saved in large batches through
AeroAuth), then in the same run:

- raw SELECT: every event row read with sqlite3 / psycopg in batches of the
  rebuild's size, keyset-paginated by position (the floor for any rebuild);
- library read: the same through the recorder's select_notifications;
- rebuild: ``rebuild_view`` of the audit view (what ``aero-auth rebuild audit`` runs).

Target: rebuild events/s >= 0.5 x raw SELECT events/s.

    .venv/bin/python bench/audit_rebuild.py --store both --events 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def raw_select(store: h.Store, batch: int) -> int:
    conn = store.connect()
    try:
        if store.kind == "sqlite":
            statement = ("SELECT rowid, originator_id, originator_version, topic, state "
                         "FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?")  # fmt: skip
        else:
            statement = ("SELECT notification_id, originator_id, originator_version, topic, "
                         "state FROM aeroauth_events WHERE notification_id > %s "
                         "ORDER BY notification_id LIMIT %s")  # fmt: skip
        count, after = 0, 0
        while True:
            rows = conn.execute(statement, (after, batch)).fetchall()
            if not rows:
                return count
            count += len(rows)
            after = rows[-1][0]
    finally:
        conn.close()


def library_select(app: object, batch: int) -> int:
    recorder = app.recorder  # type: ignore[attr-defined]
    count, after = 0, 0
    while True:
        rows = recorder.select_notifications(start=after, limit=batch, inclusive_of_start=False)
        if not rows:
            return count
        count += len(rows)
        after = rows[-1].id


def measure(store: h.Store, args: argparse.Namespace) -> None:
    from projections.runtime import open_views, rebuild_view

    kind = store.kind
    started = time.perf_counter()
    with h.Seeder(store) as seeder:
        seeder.environment()
        users = seeder.registered_users(0, args.users)
        seeder.filler(max(0, args.events - 5 * args.users - 2), users)
        app = seeder.app
        total = app.recorder.max_notification_id() or 0
        print(f"[{kind}] filled {total:,} events in {time.perf_counter() - started:.1f} s")
        t0 = time.perf_counter()
        raw = raw_select(store, args.batch)
        raw_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        lib = library_select(app, args.batch)
        lib_seconds = time.perf_counter() - t0
        views = open_views(app)
        try:
            views.ensure()
            t0 = time.perf_counter()
            position = rebuild_view(app, views.audit, batch_size=args.batch)
            rebuild_seconds = time.perf_counter() - t0
            entries = views.audit  # the live slot now holds every entry
        finally:
            views.close()
    assert raw == lib == total and position == total, (raw, lib, total, position)
    del entries
    raw_rate, lib_rate = raw / raw_seconds, lib / lib_seconds
    rebuild_rate = total / rebuild_seconds
    print(f"[{kind}] raw SELECT: {raw:,} events in {raw_seconds:.2f} s = {raw_rate:,.0f}/s")
    print(f"[{kind}] library select_notifications: {lib_seconds:.2f} s = {lib_rate:,.0f}/s")
    print(f"[{kind}] audit rebuild (batch {args.batch}): {rebuild_seconds:.2f} s = "
          f"{rebuild_rate:,.0f} events/s")  # fmt: skip
    print(f"[{kind}] ratio rebuild / raw SELECT = {rebuild_rate / raw_rate:.2f} (target >= 0.5); "
          f"rebuild / library select = {rebuild_rate / lib_rate:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="the rebuild's batch size")
    args = parser.parse_args()
    h.header("audit view rebuild vs raw SELECT (benchmark 4)")
    for kind in h.stores(args.store):
        try:
            with h.scratch_store(kind) as store:
                measure(store, args)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")


if __name__ == "__main__":
    main()
