"""Shared by the issue-6 benchmarks: scratch stores, a served aero-auth, seeding, figures.

Nothing here is a test. Each benchmark script prints the exact command that
produced its figures, and measures its baseline in the same run.

Stores: a temporary directory for SQLite, or a uniquely named PostgreSQL
database (dropped at the end) reached as the tests reach it:
AERO_TEST_PG_HOST (127.0.0.1), AERO_TEST_PG_PORT (5432), AERO_TEST_PG_USER
(postgres).

Seeding writes through the aggregates and ``AeroAuth.save`` in large batches:
the same events the HTTP API would record, without paying argon2id for each
user (every seeded user shares one password hash, computed once with the
configured parameters, so verifying it costs what any login costs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_HOST = os.environ.get("AERO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AERO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AERO_TEST_PG_USER", "postgres")
ENV = "bench"
PASSWORD = "load test passphrase 4711"
OPERATOR_TOKEN = "bench-operator-token-" + "x" * 20
SEED_BATCH = 500  # aggregates per save


class Unreachable(Exception):
    pass


def command_line() -> str:
    """The exact command that is running, to print beside the figures."""
    argv = [os.path.relpath(sys.executable, ROOT), os.path.relpath(sys.argv[0], ROOT)]
    return f"cd {shlex.quote(str(ROOT))} && " + shlex.join(argv + sys.argv[1:])


def stores(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


def add_store_argument(parser: Any) -> None:
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")


def nproc() -> int:
    return len(os.sched_getaffinity(0))


# ----- stores -----


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

        name = f"aero_issue6_{uuid.uuid4().hex[:12]}"
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


# ----- seeding -----


def totp_secret(username: str) -> str:
    """Each seeded user's authenticator secret, derivable by the load generator (bench only)."""
    digest = hashlib.sha256(f"aero-bench:{username}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


def username(i: int) -> str:
    return f"u{i:07d}"


@dataclass
class Seeder:
    """Writes environments, users and logins through AeroAuth in large batches."""

    store: Store
    clock: Any = None
    app: Any = None
    password_hash: str = ""
    users: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Seeder:
        from interfaces.composition import build_application

        self.app = build_application(settings(self.store), clock=self.clock)
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.close()

    def environment(self) -> None:
        self.app.create_environment(ENV, "Bench", "BizzStream Aero", "admin", PASSWORD)
        self.password_hash = self.app.hasher.hash(PASSWORD)

    def registered_users(self, start: int, count: int, keep: bool = True) -> list[str]:
        """Users with an authenticator registered two time steps ago (so any code now is new)."""
        from application.login import challenge_key
        from domain.credential import UserCredential

        names = []
        pending = []
        now = self.app.clock.now()
        step = int(now.timestamp()) // 30 - 2
        for i in range(start, start + count):
            name = username(i)
            user = UserCredential.create(ENV, name, self.password_hash, (), (), now)
            challenge = challenge_key(f"seed-{name}")
            user.pass_password_step(challenge, True, now + timedelta(minutes=5), now)
            encrypted = self.app.secret_box.encrypt(totp_secret(name), context=str(user.id))
            user.start_registration(challenge, encrypted, now)
            user.register_authenticator(challenge, step, now)
            user.complete_login("registration", now)
            pending.append(user)
            names.append(name)
            if keep:
                self.users[name] = user
            if len(pending) >= SEED_BATCH:
                self.app.save(*pending)
                pending = []
        if pending:
            self.app.save(*pending)
        return names

    def history(self, name: str, logins: int) -> None:
        """``logins`` past password-only-like logins (2 events each) for a kept user."""
        from application.login import challenge_key

        user = self.users[name]
        now = self.app.clock.now()
        for i in range(logins):
            challenge = challenge_key(f"history-{name}-{i}")
            user.pass_password_step(challenge, True, now + timedelta(minutes=5), now)
            user.complete_login("password", now)  # stands in for a completed code step
            if (i + 1) % SEED_BATCH == 0:
                self.app.save(user)
        self.app.save(user)

    def filler(self, events: int, users: Sequence[str]) -> None:
        """About ``events`` more events, spread over kept users, in large batches."""
        from application.login import challenge_key

        now = self.app.clock.now()
        written, batch, i = 0, 0, 0
        touched: dict[str, Any] = {}
        while written < events:
            name = users[i % len(users)]
            user = self.users[name]
            user.pass_password_step(
                challenge_key(f"fill-{i}"), True, now + timedelta(minutes=5), now
            )
            touched[name] = user
            written += 1
            batch += 1
            i += 1
            if batch >= 5000:
                self.app.save(*touched.values())
                touched, batch = {}, 0
        if touched:
            self.app.save(*touched.values())

    def login_tokens(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """A pending login (password step passed) and its login token for each user."""
        import secrets

        from application.login import challenge_key
        from domain.credential import TWO_FACTOR
        from interfaces.signing_keys import load_signing_key
        from interfaces.tokens import TokenService

        tokens = TokenService(load_signing_key(settings(self.store)), self.app.clock,
                              timedelta(hours=1))  # fmt: skip
        now = self.app.clock.now()
        expires = now + timedelta(minutes=5)
        out, pending = [], []
        for name in names:
            user = self.users[name]
            challenge = secrets.token_urlsafe(16)
            user.pass_password_step(challenge_key(challenge), True, expires, now)
            pending.append(user)
            out.append((name, tokens.issue_login(user, challenge, TWO_FACTOR, expires).token))
            if len(pending) >= SEED_BATCH:
                self.app.save(*pending)
                pending = []
        if pending:
            self.app.save(*pending)
        return out


# ----- serving -----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its CPU is on our cores too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
    return found


class CpuLedger:
    """CPU seconds spent by named groups of processes between start() and stop()."""

    def __init__(self, **groups: list[int]) -> None:
        self.groups = groups
        self.spent: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        totals = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                with suppress(OSError):
                    total += cpu_seconds(pid)
            totals[name] = total
        return totals

    def start(self) -> None:
        self._started = self._read()

    def stop(self) -> None:
        ended = self._read()
        self.spent = {name: ended[name] - self._started[name] for name in self.groups}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    command: str
    log: Path

    def workers(self) -> list[int]:
        """The processes that serve requests: uvicorn's workers, or itself when alone."""
        found = [p for p in children(self.process.pid) if _is_worker(p)]
        return found or [self.process.pid]


def _is_worker(pid: int) -> bool:
    with suppress(OSError):
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    return False


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with suppress(OSError):
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def listening(port: int) -> int:
    """Sockets listening on ``port`` (each worker of aero-auth serve has its own)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                found += fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
    return found


def wait_workers(port: int, workers: int, log: Path, timeout: float = 60) -> None:
    """Every worker listens: a load generator that connects while one still starts
    would leave all its keep-alive connections on the others."""
    deadline = time.monotonic() + timeout
    while workers > 1 and listening(port) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all {workers} workers listen:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


@contextmanager
def serve(
    argv: list[str], environ: dict[str, str], port: int, log: Path, timeout: float = 600,
    workers: int = 1,
) -> Iterator[Server]:  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, cwd=ROOT, stdout=out, stderr=out)
    try:
        wait_ready(url, process, log, timeout)
        wait_workers(port, workers, log)
        yield Server(process, url, shlex.join(argv), log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def aero_serve(store: Store, workers: int, log_name: str = "server.log",
               **extra: str) -> Any:  # fmt: skip
    """``aero-auth serve --workers N`` over ``store``, as an operator would start it."""
    port = free_port()
    argv = [str(Path(sys.executable).parent / "aero-auth"), "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]  # fmt: skip
    return serve(argv, server_environ(store, **extra), port, store.directory / log_name,
                 workers=workers)  # fmt: skip


# ----- load -----


def run_loadgen(config: dict[str, Any]) -> dict[str, Any]:
    """Run bench/_loadgen.py in its own process; its figures as a dict."""
    argv = [sys.executable, str(ROOT / "bench" / "_loadgen.py")]
    done = subprocess.run(argv, input=json.dumps(config).encode(), capture_output=True,
                          cwd=ROOT, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def today() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def header(title: str) -> None:
    print(f"# {title}")
    print(f"command: {command_line()}")
    print(f"machine: nproc={nproc()}, python {sys.version.split()[0]}, run at {today()}")
    sys.stdout.flush()
