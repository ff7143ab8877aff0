"""``aero-auth serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

# uvicorn is imported where a server starts: every other command builds this
# module's command too, and loads no web server for it (tests/cli/test_imports.py).

FACTORY = "interfaces.composition:http_app_from_environment"
WORKER_HEALTHCHECK_SECONDS = 30

logger = logging.getLogger("uvicorn.error")


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["aero_auth"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _reuse_port_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = ReusePortSocket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def _claim(family: int, address: tuple[Any, ...]) -> socket.socket:
    """The parent's socket on ``address``, if no other server listens there.

    SO_REUSEPORT would let a second server of the same user bind the port too,
    and take a share of the connections (an old version left running, say); a
    plain bind first fails on a port that anything listens on.
    """
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()  # port 0: the port the system chose
    return _reuse_port_socket(family, address)


def _worker_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A worker's own socket; failing to bind it ends the whole server, as any startup
    failure does, rather than uvicorn starting the worker again and again."""
    try:
        return _reuse_port_socket(family, address)
    except OSError as e:
        from uvicorn.config import STARTUP_FAILURE

        print(f"aero-auth: a worker cannot listen on {address}: {e}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)


class ReusePortSocket(socket.socket):
    """A listening address that every worker process opens a socket of its own on.

    With one socket shared by all workers, the first worker to wake accepts
    every waiting connection (asyncio accepts up to the backlog per wake-up), and
    keep-alive connections stay where they were accepted: one process served
    nearly all requests while the other idled (docs/benchmarks.md). Sockets bound
    with SO_REUSEPORT each have their own queue, and Linux spreads connections
    over them by a hash of the addresses.

    The parent binds one to claim the port, and never listens on it, so no
    connection waits there. Unpickling it, which is how uvicorn hands sockets to a
    worker it spawns, binds a new socket in that worker. A worker that stops
    (restart, crash) closes its socket, and the connections still queued on it
    are reset, where a shared socket would have left them to the others; Linux
    5.14 and later can hand them over instead (sysctl net.ipv4.tcp_migrate_req=1).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_socket, (self.family, self.getsockname()))


def spreads_connections() -> bool:
    """Linux balances connections over SO_REUSEPORT sockets; other systems may not."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def share_cores(workers: int) -> None:
    """Give each worker its share of the cores for argon2id (AERO_HASH_CONCURRENCY).

    Each worker bounds its own hashes at once; if every worker took all the
    cores, N workers would time-slice N x cores hashes of 19 MiB each, and each
    hash would cost more CPU (docs/benchmarks.md). Only where the kernel spreads
    connections evenly over the workers: with one shared socket a worker may hold
    most connections, and would hash with its share only. The operator's value
    stands.
    """
    if workers > 1 and spreads_connections() and "AERO_HASH_CONCURRENCY" not in os.environ:
        cores = os.cpu_count() or 1
        os.environ["AERO_HASH_CONCURRENCY"] = str(-(-cores // workers))  # rounded up


def bound_malloc_arenas() -> None:
    """Keep argon2id's working memory (19 MiB per hash) from piling up per thread.

    glibc gives threads their own malloc arenas (up to 8 per core), and after the
    first large block is freed it serves the next ones from the arena, which keeps
    them: every arena that ever hashed held ~19 MiB, +150 MiB RSS after a few
    concurrent logins (docs/benchmarks.md, benchmark 6). With two arenas and at
    most ``cpu_count`` hashes at once (application.passwords.Argon2Hasher) the blocks
    are reused, not piled up; unmapping them after each hash instead cost 23 % of
    the verify rate (the kernel zeroes 19 MiB of fresh pages every time).

    glibc reads MALLOC_ARENA_MAX once, when the process starts, so the variable
    is set and this process runs again in its place (same pid, same arguments);
    worker processes inherit it. The operator's value stands, and other C
    libraries, which do not read it, are left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not _glibc():
        return
    os.environ["MALLOC_ARENA_MAX"] = "2"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 (this very command line)


METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics(workers: int) -> Path | None:
    """Have every worker write its metrics where a scrape of any worker sums them.

    prometheus_client's multiprocess mode: each worker writes its values to files
    in PROMETHEUS_MULTIPROC_DIR, which must be set before the worker imports
    prometheus_client (workers inherit it from this process) and emptied before
    they start, or the counts of an earlier run would be added in. The
    operator's directory is used if set; else one of this process's own, which
    is also removed at exit (the path it returns). With one worker the
    process's own registry serves, unless the operator asked for the mode.
    """
    # The same path again after bound_malloc_arenas runs this process anew (same pid).
    own = Path(tempfile.gettempdir()) / f"aero-auth-metrics-{os.getpid()}"
    directory = os.environ.get(METRICS_DIRECTORY)
    if not directory:
        if workers == 1:
            return None
        directory = str(own)
        os.environ[METRICS_DIRECTORY] = directory
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return own if path == own else None


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Serve the HTTP API; creates the store, keys and operator token on first start.

    Settings come from AERO_* environment variables: the README's "Settings"
    table lists each with its default (AERO_DATABASE_URL, AERO_DATA_DIR,
    AERO_SECRET_KEY, ...). Exit status 3 when they cannot be used or the
    store cannot be reached.
    """
    owned_metrics = share_metrics(workers)
    bound_malloc_arenas()
    # Imported here, not at the top: each worker imports this module to unpickle its
    # socket before it answers uvicorn's health check, and the root imports the whole
    # HTTP app.
    from interfaces.cli.exits import configuration_errors
    from interfaces.composition import check_store, load_settings, prepare_first_start

    with configuration_errors():
        settings = load_settings()
        check_store(settings, must_exist=False)
        prepare_first_start(settings)
    share_cores(workers)
    try:
        run(
            FACTORY,
            host=host,
            port=port,
            workers=workers,
            # Our own access log names route templates and escapes client values;
            # X-Forwarded-For is honoured only from AERO_TRUSTED_PROXIES, by the app.
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_config=_log_config(),
        )
    finally:
        if owned_metrics is not None:
            shutil.rmtree(owned_metrics, ignore_errors=True)


def run(factory: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run`` of an app factory, each of several workers on a socket of its own."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE, Config
    from uvicorn.supervisors import Multiprocess

    if workers == 1 or not spreads_connections():
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
        return
    # A worker answers uvicorn's health check from a thread of its own, but only once it
    # has imported what unpickling its socket needs; on a loaded machine that took over
    # uvicorn's default 5 s, and uvicorn killed the worker as hung. A hung worker still
    # goes, after 30 s.
    config = Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **options,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        claim = _claim(family, (host, port))
    except OSError as e:
        logger.error(e)
        sys.exit(STARTUP_FAILURE)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    logger.info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, claim.getsockname()[1]
    )
    try:
        Multiprocess(config, sockets=[claim]).run()
    except KeyboardInterrupt:
        pass
    finally:
        claim.close()
