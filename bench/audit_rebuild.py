"""Issue 6, benchmark 4: rebuilding the audit view against a raw SELECT of the same events.

Fills a scratch store with about --events events (users with authenticators,
then password-step events spread over them, saved in large batches through
AeroAuth), then in the same run:

- raw SELECT: every event row read with sqlite3 / psycopg in batches of the
  rebuild's size, keyset-paginated by position (the floor for any rebuild);
- library read: the same through the recorder's select_notifications;
- rebuild: ``rebuild_view`` of the audit view (what ``aero-auth rebuild audit`` runs).

Target: rebuild events/s >= 0.5 x raw SELECT events/s.

With --stages it then takes a rebuild apart: each stage run on its own over
the same events, page by page, timed in CPU seconds of this process and in
wall seconds (PostgreSQL's own work shows only in the latter).

    .venv/bin/python bench/audit_rebuild.py --store both --events 1000000
    .venv/bin/python bench/audit_rebuild.py --store both --events 50000 --stages
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

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
    from interfaces.composition import build_views
    from projections.rebuild import rebuild_view

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
        views = build_views(h.settings(store))
        try:
            views.ensure()
            t0, c0 = time.perf_counter(), time.process_time()
            position = rebuild_view(app, views.audit, batch_size=args.batch)
            rebuild_seconds = time.perf_counter() - t0
            rebuild_cpu = time.process_time() - c0
            if args.stages:
                stages = Stages(app, views.audit, args.batch, total)
                stages.run()
        finally:
            views.close()
    assert raw == lib == total and position == total, (raw, lib, total, position)
    raw_rate, lib_rate = raw / raw_seconds, lib / lib_seconds
    rebuild_rate = total / rebuild_seconds
    print(f"[{kind}] raw SELECT: {raw:,} events in {raw_seconds:.2f} s = {raw_rate:,.0f}/s")
    print(f"[{kind}] library select_notifications: {lib_seconds:.2f} s = {lib_rate:,.0f}/s")
    per_event = rebuild_cpu / total * 1e6
    print(f"[{kind}] audit rebuild (batch {args.batch}): {rebuild_seconds:.2f} s = "
          f"{rebuild_rate:,.0f} events/s, CPU {per_event:.1f} us/event")  # fmt: skip
    print(f"[{kind}] ratio rebuild / raw SELECT = {rebuild_rate / raw_rate:.2f} (target >= 0.5); "
          f"rebuild / library select = {rebuild_rate / lib_rate:.2f}")  # fmt: skip
    if args.stages:
        stages.report(kind, rebuild_cpu, rebuild_seconds)


# ----- a rebuild taken apart -----


class MemoryWriter:
    """The audit writer's interface over dicts: the projection's work without a database."""

    def __init__(self) -> None:
        from projections.audit_chain import GENESIS

        self.genesis = GENESIS
        self.chain_key = b"b" * 32
        self.owners: dict[UUID, Any] = {}
        self.hashes: dict[str, str] = {}
        self.entries: list[Any] = []
        self.new_owners: list[tuple[UUID, Any]] = []

    def owner(self, originator_id: UUID) -> Any:
        return self.owners.get(originator_id)

    def add_owner(self, originator_id: UUID, owner: Any) -> None:
        self.owners[originator_id] = owner
        self.new_owners.append((originator_id, owner))

    def last_hash(self, environment: str) -> str:
        return self.hashes.get(environment, self.genesis)

    def append(self, entry: Any) -> None:
        self.entries.append(entry)
        self.hashes[entry.environment] = entry.hash

    def flush(self) -> None:
        pass

    def take(self) -> tuple[list[Any], list[tuple[UUID, Any]]]:
        taken = self.entries, self.new_owners
        self.entries, self.new_owners = [], []
        return taken


class Stages:
    """Each stage of a rebuild on its own, over every event, a page at a time."""

    def __init__(self, app: Any, view: Any, batch: int, total: int) -> None:
        self.app, self.view, self.batch, self.total = app, view, batch, total
        self.spent: dict[str, tuple[float, float]] = {}

    def pages(self) -> Iterator[Sequence[Any]]:
        after = 0
        while True:
            page = self.app.recorder.select_notifications(
                start=after, limit=self.batch, inclusive_of_start=False
            )
            if not page:
                return
            yield page
            after = page[-1].id

    def timed(self, name: str, work: Callable[..., object], *args: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        work(*args)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        before = self.spent.get(name, (0.0, 0.0))
        self.spent[name] = (before[0] + cpu, before[1] + wall)

    def run(self) -> None:
        import hashlib

        from eventsourcing.persistence import JSONTranscoder, Mapper

        from projections.audit import AuditProjection
        from projections.audit_chain import GENESIS, chain_content, event_digest, link

        mapper = self.app.mapper
        library = JSONTranscoder()
        for transcoding in mapper.transcoder.names.values():  # type: ignore[attr-defined]
            library.register(transcoding)
        library_mapper = Mapper(library)
        projection, memory = AuditProjection(), MemoryWriter()

        def decode(page: Sequence[Any]) -> None:
            for notification in page:
                library_mapper.to_domain_event(notification)

        def map_events(page: Sequence[Any]) -> None:
            for notification in page:
                mapper.to_domain_event(notification)

        def process(page: Sequence[Any]) -> None:
            for notification in page:
                projection.process(memory, notification, mapper)

        def hashes(entries: list[Any]) -> None:
            for e in entries:
                link(memory.chain_key, GENESIS, chain_content(e, e.details.encode(), e.event))

        # What the keyed chain costs beyond the unkeyed one it replaced: the digest of
        # the event beneath each entry, and HMAC-SHA256 where SHA-256 was.
        def digests(page: Sequence[Any]) -> None:
            for notification in page:
                event_digest(notification.topic, notification.state)

        def unkeyed(entries: list[Any]) -> None:
            for e in entries:
                content = chain_content(e, e.details.encode(), e.event)
                hashlib.sha256(bytes.fromhex(GENESIS) + content).hexdigest()

        self.timed("read: library select_notifications", lambda: sum(1 for _ in self.pages()))
        for page in self.pages():
            self.timed("(decode with the library's JSONTranscoder)", decode, page)
            self.timed("decode: mapper with OrjsonTranscoder", map_events, page)
        spare = self.view.prepare_rebuild()
        try:
            for page in self.pages():
                self.timed("process: event to chained entry", process, page)
                entries, owners = memory.take()
                self.timed("  of which canonical JSON, HMAC-SHA256", hashes, entries)
                self.timed("  (the same with SHA-256, unkeyed)", unkeyed, entries)
                self.timed("  of which the event digest", digests, page)
                self.timed("write: rows, owners, head, tracking", self._write, spare,
                           page[-1].id, entries, owners)  # fmt: skip
            self.timed("index: build the slot's indexes", self.view.index_slot, spare)
        finally:
            self.view.drop_slot(spare)

    def _write(self, slot: str, position: int, entries: list[Any], owners: list[Any]) -> None:
        with self.view.transaction() as tx:
            writer = self.view.writer(tx, slot)
            for originator_id, owner in owners:
                writer.add_owner(originator_id, owner)
            for entry in entries:
                writer.append(entry)
            writer.flush()
            tx.track(slot, position)

    def report(self, kind: str, rebuild_cpu: float, rebuild_wall: float) -> None:
        n = self.total
        print(f"[{kind}] stages, each run alone over the {n:,} events "
              f"(us per event: CPU of this process / wall):")  # fmt: skip
        for name, (cpu, wall) in self.spent.items():
            print(f"[{kind}]   {name:40s} {cpu / n * 1e6:6.2f} / {wall / n * 1e6:6.2f}")
        print(f"[{kind}]   {'the rebuild itself':40s} {rebuild_cpu / n * 1e6:6.2f} / "
              f"{rebuild_wall / n * 1e6:6.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="the rebuild's batch size")
    parser.add_argument("--stages", action="store_true", help="also time each stage alone")
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
