"""A view's own tracking: its positions table, and the positions it adopts from the library's."""

from __future__ import annotations

import sqlite3

import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from application.service import AeroAuth
from interfaces.composition import build_views
from interfaces.settings import Settings
from projections.dialects import PostgresDialect, SQLiteDialect
from projections.live import LiveReadModels
from projections.sql import sql
from projections.store import ViewStore
from tests.projections.helpers import PASSWORD, make_environment
from tests.support import caught_up


def legacy_tracking(view: ViewStore) -> None:
    """Write positions where views kept them before, through the library's public API."""
    dialect = view.dialect
    if isinstance(dialect, SQLiteDialect):
        datastore = SQLiteDatastore(db_name=dialect.path)
        try:
            recorder = SQLiteTrackingRecorder(datastore)
            recorder.create_table()
            recorder.insert_tracking(Tracking("AeroAuth/a", 7))
            recorder.insert_tracking(Tracking("AeroAuth/b", 3))
        finally:
            datastore.close()
        return
    assert isinstance(dialect, PostgresDialect)
    recorder = PostgresTrackingRecorder(
        dialect.datastore, tracking_table_name=f"{view.base}_tracking"
    )
    recorder.create_table()
    recorder.insert_tracking(Tracking("AeroAuth/a", 7))
    recorder.insert_tracking(Tracking("AeroAuth/b", 3))


def test_a_view_tracked_in_the_librarys_table_carries_its_position_over(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = build_views(settings)
    try:
        view = views.audit
        # Only first versions (audit_v1) were ever tracked there; today's versions fill
        # from position 0, so the adoption is switched on for this view alone.
        monkeypatch.setattr(type(view), "adopts_legacy_positions", True)
        legacy_tracking(view)
        views.ensure()
        assert view.position() == 7  # the live slot, a
        positions = view.query(
            sql("SELECT slot, position FROM {t} ORDER BY slot", t=view.tracking_table)
        )
        assert [(row["slot"], row["position"]) for row in positions] == [("a", 7), ("b", 3)]
    finally:
        views.close()


def test_each_slot_has_one_row_in_the_views_versioned_positions_table(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    app.change_roles("acme", "alice", ["admin"])
    position = caught_up(app, read_models)
    for view in read_models.views.all().values():
        assert view.tracking_table == f"{view.base}_positions"
        rows = view.query(sql("SELECT slot, position FROM {t}", t=view.tracking_table))
        assert [(row["slot"], row["position"]) for row in rows] == [("a", position)]


@pytest.mark.parametrize("name", ["audit", "directory"])
def test_a_new_view_starts_at_position_zero(settings: Settings, name: str) -> None:
    views = build_views(settings)
    try:
        views.ensure()
        assert views.all()[name].position() == 0
    finally:
        views.close()


def test_a_new_view_version_fills_from_position_0_beside_the_older_one(
    app: AeroAuth, settings: Settings
) -> None:
    """An upgrade from user_directory_v1 (tracked in the library's table, or in its own
    positions table, at the same names a later version would find) rebuilds the new
    version from the first event rather than adopting the older one's position."""
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    position = app.recorder.max_notification_id()
    views = build_views(settings)
    try:
        older = views.directory.dialect
        if isinstance(older, SQLiteDialect):
            # The older release's file beside the store, as it left it.
            older_file = older.path.replace("directory-v2", "directory")
            connection = sqlite3.connect(older_file)
            connection.execute("CREATE TABLE tracking (application_name TEXT, notification_id INT)")
            connection.execute("INSERT INTO tracking VALUES ('AeroAuth/a', ?)", (position,))
            connection.execute("CREATE TABLE user_directory_v1_positions (slot TEXT, position INT)")
            connection.execute(
                "INSERT INTO user_directory_v1_positions VALUES ('a', ?)", (position,)
            )
            connection.commit()
            connection.close()
        else:
            with older.datastore.transaction(commit=True) as curs:
                for table in ("user_directory_v1_tracking", "user_directory_v2_tracking"):
                    curs.execute(
                        f"CREATE TABLE {table} (application_name TEXT, notification_id BIGINT)"
                    )
                    curs.execute(
                        f"INSERT INTO {table} VALUES ('AeroAuth/a', %s)",  # noqa: S608
                        (position,),
                    )
        views.ensure()
        assert views.directory.position() == 0
    finally:
        views.close()
    models = LiveReadModels(app, build_views(settings), poll_interval=0.05)
    models.start()
    try:
        caught_up(app, models)
        assert [row.username for row in models.list_users("acme", "all", 10, None).items] == [
            "alice",
            "bob",
        ]
    finally:
        models.close()
