"""Fixtures shared by every test: stores, clocks, applications.

The ``store`` fixture runs a test once on SQLite and once on PostgreSQL
(STYLE.md 6). Each PostgreSQL test gets its own freshly created database,
dropped afterwards. Without a reachable server those runs skip with a
message, except under CI (CI=true or AERO_REQUIRE_POSTGRES=1), where a
missing PostgreSQL is a failure: nothing may be skipped there.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.composition import build_application
from interfaces.settings import Settings

PG_HOST = os.environ.get("AERO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AERO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AERO_TEST_PG_USER", "postgres")


def postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "AERO_REQUIRE_POSTGRES"
    ) == "1"


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True,
        connect_timeout=3,
    )


@dataclass
class DatabaseUnderTest:
    """A database URL for one test, with what a test needs to inspect it raw."""

    kind: str
    url: str
    sqlite_path: Path | None = None
    pg_dbname: str | None = None

    def raw_bytes(self) -> bytes:
        """Everything the store holds, as bytes: the file, or every row of every table."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            data = b""
            for path in self.sqlite_path.parent.glob(self.sqlite_path.name + "*"):
                data += path.read_bytes()
            return data
        import psycopg

        chunks = []
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.pg_dbname
        ) as conn:
            tables = conn.execute(
                "select schemaname, tablename from pg_tables "
                "where schemaname not in ('pg_catalog', 'information_schema')"
            ).fetchall()
            for schema, table in tables:
                with conn.cursor() as cur:
                    with cur.copy(f'COPY "{schema}"."{table}" TO STDOUT') as copy:
                        for block in copy:
                            chunks.append(bytes(block))
        text = b"".join(chunks)
        # COPY prints bytea as \\x-prefixed hex: decode it so a search for plain
        # bytes sees what the event payloads really hold.
        decoded = [
            bytes.fromhex(m.group(1).decode())
            for m in re.finditer(rb"\\\\x((?:[0-9a-f]{2})+)", text)
        ]
        return text + b"".join(decoded)


def _create_pg_database() -> str:
    name = f"aero_test_{uuid.uuid4().hex[:16]}"
    try:
        with _admin_connection() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as e:  # any failure to reach the server
        if postgres_required():
            pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is required in CI: {e}")
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({e}); skipping")
    return name


def _drop_pg_database(name: str) -> None:
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUnderTest]:
    """A fresh, empty store: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        path = tmp_path / "store" / "aero.db"
        yield DatabaseUnderTest("sqlite", f"sqlite:///{path}", sqlite_path=path)
        return
    name = _create_pg_database()
    try:
        yield DatabaseUnderTest(
            "postgres", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", pg_dbname=name
        )
    finally:
        _drop_pg_database(name)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> DatabaseUnderTest:
    path = tmp_path / "store" / "aero.db"
    return DatabaseUnderTest("sqlite", f"sqlite:///{path}", sqlite_path=path)


@pytest.fixture
def clock() -> FixedClock:
    # Mid-step, so +-1 step arithmetic is easy to read in tests.
    return FixedClock(datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC))


@pytest.fixture
def settings(database: DatabaseUnderTest, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path)


def make_settings(database: DatabaseUnderTest, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database.url,
        "data_dir": tmp_path / "data",
        "secret_key": base64.b64encode(b"k" * 32).decode(),
        "operator_token": "operator-token-for-tests",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Iterator[AeroAuth]:
    application = build_application(settings, clock=clock)
    try:
        yield application
    finally:
        application.close()
