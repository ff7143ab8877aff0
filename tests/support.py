"""What several test packages share: the users and their passwords, an authenticator
app's codes, a first registration, the CLI's environment, the audit export's columns,
and the read models of another process over a test's store.

Helpers rather than fixtures (each package's conftest.py holds its fixtures), so a
test says in its own body which steps it takes.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
import pyotp

from application.clock import FixedClock
from application.service import AeroAuth
from domain.totp import PERIOD
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections.dialects import SQLiteDialect
from projections.live import LiveReadModels
from tests.conftest import PG_HOST, PG_PORT, PG_USER, DatabaseUnderTest

ENV = "acme"
ISSUER = "BizzStream Aero"
ADMIN = "alice"
ADMIN_PASSWORD = "correct horse battery"
# Any user's password where the test does not care whose it is.
PASSWORD = "a sound passphrase 4711"
PASSWORDS = {
    ADMIN: ADMIN_PASSWORD,
    "bob": "my long secret phrase",
    "carol": "she keeps the books",
    "dave": "he joined last of all",
}

# The audit export's columns, in order (CSV header, JSON-lines keys).
AUDIT_EXPORT_COLUMNS = [
    "position",
    "occurred_at",
    "type",
    "username",
    "actor",
    "outcome",
    "ip",
    "user_agent",
    "details",
]


def code_at(secret: str, when: datetime, steps: int = 0) -> str:
    """What an authenticator app shows ``steps`` time steps away from ``when``."""
    return pyotp.TOTP(secret).at(int(when.timestamp()) + steps * PERIOD)


class Enrolled(NamedTuple):
    """What a user holds after registering: the app's secret and the recovery codes."""

    secret: str
    recovery_codes: list[str]


def register(
    app: AeroAuth, clock: FixedClock, username: str, password: str, env: str = ENV
) -> Enrolled:
    """A first login under a 2FA requirement: scan, confirm with the app's code, get
    recovery codes. The clock stays where it is: the code just used is spent."""
    step = app.start_login(env, username, password)
    assert step.status == "two_factor_registration_required", step.status
    assert step.challenge_id is not None
    registration = app.start_registration(env, username, step.challenge_id)
    completed = app.confirm_registration(
        env, username, step.challenge_id, code_at(registration.secret, clock.now())
    )
    assert completed.recovery_codes is not None
    return Enrolled(registration.secret, completed.recovery_codes)


def cli_env(settings: Settings, operator_token: bool = False) -> dict[str, str]:
    """The test's settings as the CLI reads them: AERO_ variables; the operator token
    only when asked for."""
    env = {
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
    }
    if settings.secret_key is not None:
        env["AERO_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if operator_token and settings.operator_token is not None:
        env["AERO_OPERATOR_TOKEN"] = settings.operator_token.get_secret_value()
    return env


def live_read_models(app: AeroAuth, settings: Settings, **options: Any) -> LiveReadModels:
    """Read models of another process over the test's store, as the composition root
    builds the views."""
    return LiveReadModels(app, build_views(settings), **options)


def caught_up(app: AeroAuth, read_models: LiveReadModels) -> int:
    """Wait until the read models have projected every stored event; the last position."""
    position = app.recorder.max_notification_id() or 0
    assert read_models.wait_for(position, timeout=10), read_models.problems()
    return position


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
