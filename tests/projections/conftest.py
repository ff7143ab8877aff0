"""Read models over the ``app`` fixture, and the commands the tests drive them with."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pyotp
import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.totp import WINDOW, hotp, time_step
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections.dialects import SQLiteDialect
from projections.live import LiveReadModels
from tests.conftest import PG_HOST, PG_PORT, PG_USER, DatabaseUnderTest

ADMIN = "alice"
ADMIN_PASSWORD = "correct horse battery"
PASSWORD = "long enough pass 1"


@pytest.fixture
def read_models(app: AeroAuth, settings: Settings) -> Iterator[LiveReadModels]:
    models = live_read_models(app, settings, poll_interval=0.05)
    models.start()
    try:
        yield models
    finally:
        models.close()


def live_read_models(app: AeroAuth, settings: Settings, **options: Any) -> LiveReadModels:
    """Read models of another process over the test's store, as the composition root
    builds the views."""
    return LiveReadModels(app, build_views(settings), **options)


def caught_up(app: AeroAuth, read_models: LiveReadModels) -> int:
    position = app.recorder.max_notification_id() or 0
    assert read_models.wait_for(position, timeout=10), read_models.problems()
    return position


def make_environment(app: AeroAuth, slug: str = "acme") -> None:
    app.create_environment(slug, slug.title(), "BizzStream Aero", ADMIN, ADMIN_PASSWORD)


def toggle_groups(app: AeroAuth, clock: FixedClock, slug: str, username: str, times: int) -> None:
    """Many events for the price of one save: no password hashing involved."""
    user = app.user(slug, username)
    for i in range(times):
        user.change_groups([f"team-{i % 2}"], clock.now())
    app.save(user)


def code_at(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def wrong_code(secret: str, at: datetime) -> str:
    step = time_step(at)
    valid = {hotp(secret, step + offset) for offset in range(-WINDOW, WINDOW + 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def register(
    app: AeroAuth, clock: FixedClock, slug: str, username: str, password: str = PASSWORD
) -> tuple[str, list[str]]:
    """A first login under a 2FA requirement: enrol an authenticator. Secret and codes."""
    step = app.start_login(slug, username, password)
    assert step.status == "two_factor_registration_required"
    assert step.challenge_id is not None
    registration = app.start_registration(slug, username, step.challenge_id)
    done = app.confirm_registration(
        slug, username, step.challenge_id, code_at(registration.secret, clock.now())
    )
    assert done.recovery_codes is not None
    return registration.secret, done.recovery_codes


def login_challenge(app: AeroAuth, slug: str, username: str, password: str = PASSWORD) -> str:
    step = app.start_login(slug, username, password)
    assert step.status == "two_factor_required"
    assert step.challenge_id is not None
    return step.challenge_id


def raw_sql(
    database: DatabaseUnderTest, live: LiveReadModels, statement: str, *params: Any
) -> None:
    """Straight to the database, past the service: what an intruder with access could do."""
    if database.kind == "sqlite":
        view = live.views.audit if "audit_v2" in statement else live.views.directory
        assert isinstance(view.dialect, SQLiteDialect)
        with sqlite3.connect(view.dialect.path) as conn:
            conn.execute(statement, params)
        return
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database.pg_dbname
    ) as conn:
        conn.execute(statement.replace("?", "%s"), params)
