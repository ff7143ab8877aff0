"""The baseline of bench/code_step.py: a bare FastAPI endpoint doing what the code step
does at its core, directly: read one row by key, insert one row, commit.

Served as aero-auth is served, with the same number of workers, each on a socket
of its own (``python bench/bare_app.py --port P --workers N``, which runs
interfaces.cli.serve.run); or by plain uvicorn (``--factory bare_app:create_app
--app-dir bench``) with one worker. BENCH_BARE_DSN names the database: a
SQLite file path, or a PostgreSQL conninfo string. BENCH_BARE_LOCK=1 (PostgreSQL)
takes the library's per-application table lock before the insert, to show its cost.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

ROWS_TABLE = "bench_bare_users"
EVENTS_TABLE = "bench_bare_events"


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    code: str


def prepare(dsn: str, rows: int) -> None:
    """Create and fill the tables (run once, before the server starts)."""
    state = "x" * 600  # about the size of a user's snapshot state
    if dsn.startswith("postgres") or "dbname=" in dsn:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {ROWS_TABLE} (id BIGINT PRIMARY KEY, state TEXT)")
            conn.execute(f"CREATE TABLE {EVENTS_TABLE} (id BIGSERIAL PRIMARY KEY, "
                         "user_id BIGINT, data TEXT)")  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {ROWS_TABLE} VALUES (%s, %s)",  # noqa: S608
                                [(i, state) for i in range(1, rows + 1)])  # fmt: skip
        return
    with sqlite3.connect(dsn) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"CREATE TABLE {ROWS_TABLE} (id INTEGER PRIMARY KEY, state TEXT)")
        conn.execute(f"CREATE TABLE {EVENTS_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "user_id INTEGER, data TEXT)")  # fmt: skip
        conn.executemany(f"INSERT INTO {ROWS_TABLE} VALUES (?, ?)",  # noqa: S608
                         [(i, state) for i in range(1, rows + 1)])  # fmt: skip


def create_app() -> FastAPI:
    dsn = os.environ["BENCH_BARE_DSN"]
    app = FastAPI()
    postgres = dsn.startswith("postgres") or "dbname=" in dsn

    if postgres:
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(dsn, min_size=4, max_size=8, open=True)

        lock = os.environ.get("BENCH_BARE_LOCK") == "1"

        def step(row: int) -> dict[str, Any]:
            with pool.connection() as conn, conn.transaction():
                if lock:
                    # What eventsourcing 9.5.6 does before every insert on PostgreSQL.
                    conn.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
                state = conn.execute(
                    f"SELECT state FROM {ROWS_TABLE} WHERE id = %s", (row,)  # noqa: S608
                ).fetchone()
                conn.execute(f"INSERT INTO {EVENTS_TABLE} (user_id, data) VALUES (%s, %s)",  # noqa: S608
                             (row, '{"time_step": 1}'))  # fmt: skip
            return {"status": "authenticated", "found": state is not None}
    else:
        local = threading.local()

        def connection() -> sqlite3.Connection:
            if not hasattr(local, "conn"):
                local.conn = sqlite3.connect(dsn, isolation_level=None, timeout=10,
                                             check_same_thread=False)  # fmt: skip
            conn: sqlite3.Connection = local.conn
            return conn

        def step(row: int) -> dict[str, Any]:
            conn = connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                state = conn.execute(
                    f"SELECT state FROM {ROWS_TABLE} WHERE id = ?", (row,)  # noqa: S608
                ).fetchone()
                conn.execute(f"INSERT INTO {EVENTS_TABLE} (user_id, data) VALUES (?, ?)",  # noqa: S608
                             (row, '{"time_step": 1}'))  # fmt: skip
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return {"status": "authenticated", "found": state is not None}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz-async")
    async def healthz_async() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/code")
    def code(body: CodeRequest) -> dict[str, Any]:
        return step(body.id)

    return app


def main() -> None:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from interfaces.cli.serve import run

    parser = argparse.ArgumentParser(description="serve the bare endpoint as aero-auth is served")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    run("bare_app:create_app", host="127.0.0.1", port=args.port, workers=args.workers,
        access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
