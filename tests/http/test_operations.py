"""Health, readiness, metrics, and who is recorded as acting from where."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from application.clock import FixedClock
from domain.rules import user_id
from domain.signals import CONFLICT_RETRIED, CONFLICT_RETRIES_EXHAUSTED
from interfaces.composition import build_read_models
from interfaces.http.middleware import _user_agent
from interfaces.http.observability import Metrics
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN, ADMIN_PASSWORD, Api, TestClient


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_metrics_count_requests_by_route_template_and_logins_by_outcome(
    acme: Api, app_factory: Callable[..., TestClient]
) -> None:
    acme.login(ADMIN, ADMIN_PASSWORD)
    acme.login(ADMIN, "wrong password")
    acme.client.get(acme.url("/users/alice"), headers=acme.admin)
    acme.client.get("/no/such/path")

    text = acme.client.get("/metrics").text
    other = app_factory().get("/metrics").text

    assert (
        'aero_http_requests_total{method="GET",route="/v1/environments/{env}/users/{username}",'
        'status="200"} 1.0' in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert "aero_http_request_duration_seconds_bucket" in text
    assert 'aero_login_steps_total{outcome="authenticated",step="password"} 2.0' in text
    assert 'aero_login_steps_total{outcome="invalid_credentials",step="password"} 1.0' in text
    # Each app has its own registry.
    assert "/users/{username}" not in other


def _last_event(api: Api, username: str) -> object:
    *_, last = api.application.events.get(user_id(api.env, username))
    return last


def test_events_record_the_actor_ip_and_user_agent(acme: Api) -> None:
    acme.create_user("bob")
    acme.client.put(
        acme.url("/users/bob/groups"),
        json={"groups": ["finance"]},
        headers={**acme.admin, "User-Agent": "AdminConsole/2.0"},
    )
    changed = _last_event(acme, "bob")
    acme.login("bob", **{"User-Agent": "Mozilla/5.0"})
    logged_in = _last_event(acme, "bob")

    assert (changed.actor, changed.ip, changed.user_agent) == (  # type: ignore[attr-defined]
        "alice",
        "testclient",
        "AdminConsole/2.0",
    )
    assert (logged_in.actor, logged_in.user_agent) == ("bob", "Mozilla/5.0")  # type: ignore[attr-defined]


def test_user_agents_are_recorded_as_utf8_text_cut_to_512_characters(acme: Api) -> None:
    acme.create_user("bob")
    # Header values as bytes, as they travel.
    acme.login("bob", **{"User-Agent": "Caf\u00e9Browser/1.0 \u2713".encode()})  # type: ignore[arg-type]
    utf8 = _last_event(acme, "bob")
    acme.login("bob", **{"User-Agent": ("\u00e9" * 600).encode()})  # type: ignore[arg-type]
    long = _last_event(acme, "bob")

    assert utf8.user_agent == "Caf\u00e9Browser/1.0 \u2713"  # type: ignore[attr-defined]
    assert long.user_agent == "\u00e9" * 512  # type: ignore[attr-defined]


def test_a_user_agent_that_is_not_utf8_keeps_its_readable_part() -> None:
    # The test client re-encodes headers as UTF-8, so this one goes in directly.
    scope = {"headers": [(b"host", b"x"), (b"user-agent", b"bad \xff byte")]}

    assert _user_agent(scope) == "bad \ufffd byte"
    assert _user_agent({"headers": []}) is None


@pytest.mark.parametrize(
    ("peer", "forwarded", "recorded"),
    [
        ("10.0.0.2", "203.0.113.7", "203.0.113.7"),
        ("10.0.0.2", "198.51.100.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        ("10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("192.0.2.50", "203.0.113.7", "192.0.2.50"),
    ],
    ids=["trusted", "chain", "malformed", "untrusted"],
)
def test_forwarded_for_counts_only_from_trusted_proxies(
    app_factory: Callable[..., TestClient],
    settings: Settings,
    clock: FixedClock,
    peer: str,
    forwarded: str,
    recorded: str,
) -> None:
    trusting = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    client = app_factory(trusting)
    api = Api(client, clock)
    api.create_environment()
    client_from_peer = TestClient(client.app, client=(peer, 40000))

    client_from_peer.post(
        api.url("/login"),
        json={"username": ADMIN, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": forwarded},
    )

    assert _last_event(api, ADMIN).ip == recorded  # type: ignore[attr-defined]


def test_trusted_proxies_must_be_addresses_or_networks(settings: Settings) -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        Settings(**{**settings.model_dump(), "trusted_proxies": ["not-a-network"]})


def test_metrics_show_the_views_the_held_back_event_times_and_conflict_retries(
    app_factory: Callable[..., TestClient], settings: Settings, clock: FixedClock
) -> None:
    client = app_factory(read_models_factory=lambda app: build_read_models(settings, app))
    api = Api(client, clock)
    api.create_environment()
    api.create_user("bob")
    clock.advance(seconds=-30)  # the clock steps back: bob's next event keeps his last time
    api.client.put(api.url("/users/bob/groups"), json={"groups": ["x"]}, headers=api.admin)
    head = api.application.recorder.max_notification_id()
    for _ in range(2):
        CONFLICT_RETRIED.emit()
    CONFLICT_RETRIES_EXHAUSTED.emit()

    # The views' gauges are a view of at most 2 s ago: wait for the current one.
    position = f'aero_view_position{{view="directory"}} {head:.1f}'
    deadline = time.monotonic() + 15
    while position not in (text := client.get("/metrics").text) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert "aero_event_time_held_back_total 1.0" in text
    assert "aero_conflict_retries_total 2.0" in text
    assert "aero_conflict_retries_exhausted_total 1.0" in text
    for view in ("audit", "directory"):
        assert f'aero_view_position{{view="{view}"}} {head:.1f}' in text
        assert f'aero_view_lag_events{{view="{view}"}} 0.0' in text
        assert f'aero_view_lag_seconds{{view="{view}"}} 0.0' in text
        assert f'aero_view_lease_held{{view="{view}"}} 1.0' in text


def test_store_errors_are_counted_by_kind_and_nothing_else_is() -> None:
    metrics = Metrics()
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as e:
            raise OperationalError(str(e)) from e
    except OperationalError as wrapped:
        assert metrics.store_error(wrapped)
    assert not metrics.store_error(ValueError("not a database's"))

    text = metrics.exposition().decode()
    kind = "eventsourcing.OperationalError/sqlite3.OperationalError"
    assert f'aero_store_errors_total{{kind="{kind}"}} 1.0' in text
    assert text.count("aero_store_errors_total{") == 1


_WORKER = """
import sys
from interfaces.http.observability import Metrics
metrics = Metrics()
for _ in range(int(sys.argv[1])):
    metrics.observe_request("GET", "/healthz", 200, 0.001)
metrics.view_lease_held.labels("audit").set(int(sys.argv[2]))
sys.stdout.buffer.write(metrics.exposition())
"""


def test_metrics_of_several_processes_sharing_a_directory_are_summed(tmp_path: Path) -> None:
    """What `serve --workers N` sets up: each worker's scrape answers for all of them."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(requests: int, holds: int) -> str:
        return subprocess.run(
            [sys.executable, "-c", _WORKER, str(requests), str(holds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    worker(3, 1)
    second = worker(4, 0)

    route = 'aero_http_requests_total{method="GET",route="/healthz",status="200"}'
    assert f"{route} 7.0" in second
    # livesum: the first process was not marked dead (process_ended), so its 1 counts.
    assert 'aero_view_lease_held{view="audit"} 1.0' in second
