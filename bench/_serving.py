"""``aero-auth serve`` started as an operator would, and what its processes spend."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _stores import ROOT, Store, server_environ


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
