"""Scratch stores for the benchmarks, and the settings a server or the seeding
application reads over one.

A temporary directory for SQLite, or a uniquely named PostgreSQL database
(dropped at the end) reached as the tests reach it: AERO_TEST_PG_HOST
(127.0.0.1), AERO_TEST_PG_PORT (5432), AERO_TEST_PG_USER (postgres).
"""

from __future__ import annotations

import base64
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PG_HOST = os.environ.get("AERO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AERO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AERO_TEST_PG_USER", "postgres")
ENV = "bench"
PASSWORD = "load test passphrase 4711"
OPERATOR_TOKEN = "bench-operator-token-" + "x" * 20


class Unreachable(Exception):
    pass


@dataclass
class Store:
    kind: str
    directory: Path  # keys and, for SQLite, the database files
    url: str
    pg_dbname: str = ""

    @property
    def sqlite_path(self) -> Path:
        return self.directory / "aero.db"

    def connect(self) -> Any:
        """A plain DB-API connection to the event store's database (autocommit)."""
        if self.kind == "sqlite":
            return sqlite3.connect(self.sqlite_path, isolation_level=None, timeout=10)
        import psycopg

        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.pg_dbname, autocommit=True
        )

    @property
    def events_table(self) -> str:
        return "stored_events" if self.kind == "sqlite" else "aeroauth_events"

    @property
    def max_position_sql(self) -> str:
        column = "rowid" if self.kind == "sqlite" else "notification_id"
        return f"SELECT MAX({column}) FROM {self.events_table}"  # noqa: S608

    def connect_audit(self) -> Any:
        if self.kind == "sqlite":
            audit = self.directory / "aero.audit.db"
            return sqlite3.connect(audit, isolation_level=None, timeout=10)
        return self.connect()


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


@contextmanager
def scratch_store(kind: str) -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="aero-bench-") as tmp:
        directory = Path(tmp)
        if kind == "sqlite":
            yield Store("sqlite", directory, f"sqlite:///{directory / 'aero.db'}")
            return
        import psycopg

        name = f"aero_bench_{uuid.uuid4().hex[:12]}"
        try:
            with _pg_admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as e:
            raise Unreachable(f"PostgreSQL at {PG_HOST}:{PG_PORT}: {e}") from e
        try:
            yield Store("postgres", directory, f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
                        pg_dbname=name)  # fmt: skip
        finally:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def secret_key(store: Store) -> str:
    path = store.directory / "bench-secret.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
    return path.read_text()


def server_environ(store: Store, **extra: str) -> dict[str, str]:
    """AERO_* for a server (or the seeding application) over ``store``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    environ.update(
        AERO_DATABASE_URL=store.url,
        AERO_DATA_DIR=str(store.directory),
        AERO_OPERATOR_TOKEN=OPERATOR_TOKEN,
        AERO_SECRET_KEY=secret_key(store),
        **extra,
    )
    return environ


def settings(store: Store) -> Any:
    from interfaces.settings import Settings

    environ = server_environ(store)
    return Settings(
        database_url=environ["AERO_DATABASE_URL"],
        data_dir=Path(environ["AERO_DATA_DIR"]),
        operator_token=OPERATOR_TOKEN,
        secret_key=environ["AERO_SECRET_KEY"],
    )
