"""Latency of one filtered audit page (one user, one day) over a large audit log.

This measures the query side only: it writes N entries straight into the audit
view's live tables (with valid hash chains), bypassing the event store and the
projection, then times ``AuditView.entries`` for random users and days, on
SQLite and on PostgreSQL (in a scratch database it creates and drops).

    .venv/bin/python bench/audit_page.py --events 1000000
    .venv/bin/python bench/audit_page.py --events 200000 --stores sqlite

Target: p95 below 20 ms.
"""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from domain.rules import username_key
from projections.api import AuditEntry, AuditQuery
from projections.audit_chain import GENESIS, canonical_json, chain_hash
from projections.audit_rules import AUDIT_TYPES
from projections.audit_store import SqlAuditView
from projections.dialects import PostgresDialect, SQLiteDialect

START = datetime(2026, 1, 1, tzinfo=UTC)
ENVIRONMENTS = ("acme", "globex", "initech")
HOT_USER = "target"  # a user under a guessing attack: a large share of all events


def generate(events: int, users: int, days: int, seed: int) -> Iterator[tuple[AuditEntry, str]]:
    """Entries in position order over ``days`` days, chained per environment."""
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    previous = dict.fromkeys(ENVIRONMENTS, GENESIS)
    for position in range(1, events + 1):
        environment = "acme" if rng.random() < 0.8 else rng.choice(ENVIRONMENTS[1:])
        if environment == "acme" and rng.random() < 0.05:
            username = HOT_USER
        else:
            username = f"user{rng.randrange(users):05d}"
        kind = rng.choice(AUDIT_TYPES)
        entry = AuditEntry(
            position=position,
            occurred_at=START + timedelta(seconds=span * position / events),
            type=kind,
            environment=environment,
            username=username,
            actor=username,
            outcome="failure" if "failed" in kind or "locked" in kind else "success",
            ip=f"203.0.113.{rng.randrange(256)}",
            user_agent="Mozilla/5.0 (bench)",
            details={"reason": "wrong"} if "failed" in kind else {},
        )
        digest = chain_hash(BENCH_KEY, previous[environment], entry, BENCH_EVENT)
        previous[environment] = digest
        yield entry, digest


# The chain's HMAC key and an event digest: the figures do not depend on their values.
BENCH_KEY = b"b" * 32
BENCH_EVENT = "0" * 64


def fill(view: SqlAuditView, rows: Iterator[tuple[AuditEntry, str]]) -> None:
    table = view.table("a")
    heads: dict[str, tuple[int, str]] = {}
    chunk: list[tuple[object, ...]] = []
    statement = (
        f"INSERT INTO {table} (position, environment, occurred_at, type, username, "  # noqa: S608
        "username_key, actor, outcome, ip, user_agent, details, event, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def flush() -> None:
        with view.transaction() as tx:
            view.executemany(tx.cursor, statement, chunk)
        chunk.clear()

    for entry, digest in rows:
        heads[entry.environment] = (entry.position, digest)
        chunk.append(
            (
                entry.position,
                entry.environment,
                view.time_to_db(entry.occurred_at),
                entry.type,
                entry.username,
                username_key(entry.username or ""),
                entry.actor,
                entry.outcome,
                entry.ip,
                entry.user_agent,
                canonical_json(entry.details).decode(),
                BENCH_EVENT,
                digest,
            )
        )
        if len(chunk) == 20_000:
            flush()
    if chunk:
        flush()
    with view.transaction() as tx:
        for environment, (position, digest) in heads.items():
            view.execute(
                tx.cursor,
                f"INSERT INTO {table}_chain VALUES (?, ?, ?)",  # noqa: S608
                (environment, position, digest),
            )
    # What the service does at start and every OPTIMIZE_EVERY positions.
    view.optimize()


def measure(
    view: SqlAuditView, queries: int, users: int, days: int, seed: int, hot: bool
) -> list[float]:
    rng = random.Random(seed)
    timings = []
    for _ in range(queries):
        day = START + timedelta(days=rng.randrange(days))
        username = HOT_USER if hot else f"user{rng.randrange(users):05d}"
        query = AuditQuery("acme", username=username, since=day, until=day + timedelta(days=1))
        started = time.perf_counter()
        view.entries(query, 0, 101)  # a page of 100, and one more to know there is a next
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def report(store: str, label: str, timings: list[float]) -> None:
    timings = sorted(timings)
    p50 = statistics.median(timings)
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(f"{store:9} {label:34} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   (n={len(timings)})")


def run(store: str, view: SqlAuditView, args: argparse.Namespace) -> None:
    view.ensure()
    started = time.perf_counter()
    fill(view, generate(args.events, args.users, args.days, args.seed))
    print(f"{store:9} filled {args.events:,} entries in {time.perf_counter() - started:.1f} s")
    measure(view, 20, args.users, args.days, args.seed + 1, hot=False)  # warm the cache
    report(
        store,
        "one user, one day",
        measure(view, args.queries, args.users, args.days, args.seed + 2, hot=False),
    )
    report(
        store,
        f"'{HOT_USER}' (5% of events), one day",
        measure(view, args.queries, args.users, args.days, args.seed + 3, hot=True),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where a scratch database may be created and dropped",
    )
    args = parser.parse_args()
    print("$", shlex.join([sys.executable, *sys.argv]))

    if "sqlite" in args.stores:
        with tempfile.TemporaryDirectory() as tmp:
            view = SqlAuditView(SQLiteDialect(str(Path(tmp) / "bench.audit.db")), BENCH_KEY)
            try:
                run("sqlite", view, args)
            finally:
                view.close()

    if "postgres" in args.stores:
        import psycopg
        from eventsourcing.postgres import PostgresDatastore

        url = urlparse(args.postgres)
        server = {
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "password": url.password or "",
        }
        name = f"aero_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            dbname=url.path.strip("/") or "postgres", autocommit=True, **server
        ) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                datastore = PostgresDatastore(dbname=name, pool_size=2, **server)
                try:
                    run("postgres", SqlAuditView(PostgresDialect(datastore), BENCH_KEY), args)
                finally:
                    datastore.close()
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
