"""``aero-auth serve --workers N``: every worker takes connections, and shares the cores.

Keep-alive connections stay with the worker that accepted them. With one
listening socket shared by all workers, the first to wake accepted a whole
burst of them; each worker now listens on a socket of its own (SO_REUSEPORT)
and the kernel spreads the connections.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from pathlib import Path

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE

from interfaces.cli import serve
from interfaces.composition import build_application
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import serving

linux_only = pytest.mark.skipif(
    not serve.spreads_connections(), reason="only Linux spreads connections over SO_REUSEPORT"
)


def _workers(server_pid: int) -> list[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()  # not the resource tracker
    ]


def _environ(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with (or exec'd with)."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _tcp(port: int, state: str) -> set[str]:
    """The sockets in ``state`` (01 established, 0A listening) whose local port is ``port``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(f"socket:[{fields[9]}]")
    return found


def _accepted_by_worker(server_pid: int, port: int) -> dict[int, int]:
    """How many established connections to ``port`` each worker process holds."""
    accepted = _tcp(port, "01")
    counts = {}
    for pid in _workers(server_pid):
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                held += os.readlink(fd) in accepted
            except OSError:  # closed while we looked
                pass
        counts[pid] = held
    return counts


@linux_only
@pytest.mark.slow
def test_two_workers_each_serve_a_share_of_a_burst_of_connections(
    database: DatabaseUnderTest, tmp_path: Path
) -> None:
    with serving(database, tmp_path, workers=2) as server:
        port = httpx.URL(server.base_url).port
        assert port is not None
        # Ready is one worker's answer; a worker listens once its startup is done,
        # which on a loaded machine took over 30 s (importing the service alone: 17 s).
        deadline = time.monotonic() + 180
        while len(_tcp(port, "0A")) < 2:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.05)
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(24)]
        try:
            for connection in connections:
                connection.settimeout(10)
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: aero\r\n\r\n")
            for connection in connections:
                assert connection.recv(4096).startswith(b"HTTP/1.1 200")
            counts = _accepted_by_worker(server.pid, port)
            arenas = [_environ(pid).get("MALLOC_ARENA_MAX") for pid in counts]
            metric_dirs = {_environ(pid).get("PROMETHEUS_MULTIPROC_DIR") for pid in counts}
        finally:
            for connection in connections:
                connection.close()
        # Each worker sets its own gauges every 2 s; wait until the holder's is in.
        deadline = time.monotonic() + 30
        lease = 'aero_view_lease_held{view="audit"} 1.0'
        while lease not in httpx.get(f"{server.base_url}/metrics").text:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.2)
        # Each scrape on a connection of its own, so whichever worker the kernel picks.
        scrapes = [httpx.get(f"{server.base_url}/metrics").text for _ in range(8)]
    healthz = 'aero_http_requests_total{method="GET",route="/healthz",status="200"}'
    assert all(f"{healthz} 24.0" in text for text in scrapes), [
        line for text in scrapes for line in text.splitlines() if line.startswith(healthz)
    ]
    assert all(lease in text for text in scrapes)
    [metric_dir] = metric_dirs
    assert metric_dir is not None and not Path(metric_dir).exists()  # removed at exit
    assert len(counts) == 2, counts
    assert arenas == ["2", "2"]
    assert sum(counts.values()) == 24, counts
    # Hashed over two sockets, all 24 on one worker has odds of 2 in 2**24.
    assert min(counts.values()) >= 1, counts


# The socket plumbing below (_reuse_port_socket, _claim, _worker_socket) has no public
# seam short of starting servers; it is the serve command's own business, so these
# tests call its private helpers on purpose.
@linux_only
def test_a_worker_unpickles_the_address_into_a_socket_of_its_own() -> None:
    claim = serve._reuse_port_socket(socket.AF_INET, ("127.0.0.1", 0))
    try:
        worker = pickle.loads(pickle.dumps(claim))  # noqa: S301 (our own bytes)
        try:
            assert worker.fileno() != claim.fileno()
            assert worker.getsockname() == claim.getsockname()
            assert worker.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            worker.listen()
            with socket.create_connection(claim.getsockname(), timeout=5):
                accepted, _ = worker.accept()
                accepted.close()
        finally:
            worker.close()
    finally:
        claim.close()


def test_the_claim_on_a_taken_port_fails_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve._claim(socket.AF_INET, taken.getsockname())


@linux_only
def test_a_second_server_cannot_claim_a_port_another_servers_workers_listen_on() -> None:
    # SO_REUSEPORT alone would let it bind, and take a share of the connections.
    worker = serve._reuse_port_socket(socket.AF_INET, ("127.0.0.1", 0))
    try:
        worker.listen()
        with pytest.raises(OSError):
            serve._claim(socket.AF_INET, worker.getsockname())
    finally:
        worker.close()


@linux_only
def test_a_worker_that_cannot_listen_stops_the_server_instead_of_restarting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as stopped:
            serve._worker_socket(socket.AF_INET, taken.getsockname())
    assert stopped.value.code == STARTUP_FAILURE


@pytest.mark.parametrize(
    ("workers", "cores", "given", "expected"),
    [(1, 2, None, None), (2, 2, None, "1"), (4, 2, None, "1"), (2, 3, None, "2"), (2, 2, "3", "3")],
)
def test_workers_share_the_cores_for_hashing_unless_the_operator_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    cores: int,
    given: str | None,
    expected: str | None,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(serve, "spreads_connections", lambda: True)
    # setenv first, so that the test's end restores the variable share_cores may set.
    monkeypatch.setenv("AERO_HASH_CONCURRENCY", given or "")
    if given is None:
        monkeypatch.delenv("AERO_HASH_CONCURRENCY")
    serve.share_cores(workers)
    assert os.environ.get("AERO_HASH_CONCURRENCY") == expected


def test_workers_keep_all_the_cores_where_connections_may_land_unevenly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serve, "spreads_connections", lambda: False)
    monkeypatch.setenv("AERO_HASH_CONCURRENCY", "")
    monkeypatch.delenv("AERO_HASH_CONCURRENCY")
    serve.share_cores(2)
    assert "AERO_HASH_CONCURRENCY" not in os.environ


def test_the_application_hashes_as_many_at_once_as_the_setting_says(settings: Settings) -> None:
    app = build_application(settings.model_copy(update={"hash_concurrency": 3}))
    try:
        # That the hasher keeps to its number is tests/unit/test_passwords.py's to show.
        assert app.hasher.concurrency == 3
    finally:
        app.close()


@linux_only
def test_the_serving_process_runs_with_two_malloc_arenas(
    database: DatabaseUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc reads the variable only at start: serve sets it and runs itself again.
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    with serving(database, tmp_path) as server:
        assert _environ(server.pid).get("MALLOC_ARENA_MAX") == "2"
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_the_operators_malloc_arena_max_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exec(*args: object) -> None:
        raise AssertionError("serve ran itself again over the operator's MALLOC_ARENA_MAX")

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(os, "execv", no_exec)
    serve.bound_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "4"


def test_serve_gives_several_workers_an_emptied_metrics_directory_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(serve.METRICS_DIRECTORY, raising=False)
    assert serve.share_metrics(1) is None
    assert serve.METRICS_DIRECTORY not in os.environ

    owned = serve.share_metrics(2)
    try:
        assert owned is not None and os.environ[serve.METRICS_DIRECTORY] == str(owned)
        (owned / "counter_123.db").write_bytes(b"an earlier run's")
        # Run anew in its place (bound_malloc_arenas): the same directory, emptied again.
        assert serve.share_metrics(2) == owned
        assert list(owned.iterdir()) == []
    finally:
        if owned is not None:
            owned.rmdir()


def test_the_operators_metrics_directory_is_emptied_but_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "gauge_livesum_9.db").write_bytes(b"stale")
    monkeypatch.setenv(serve.METRICS_DIRECTORY, str(tmp_path))

    assert serve.share_metrics(2) is None
    assert list(tmp_path.iterdir()) == []
