"""Issue 6, benchmarks 1 and 5: full logins over HTTP against the raw argon2id verify rate,
and the projection lag of the audit view under that load.

1. ``aero-auth serve --workers N`` (N = cores) on loopback, many pre-created users
   with registered authenticators, an asyncio load generator (bench/_loadgen.py) in its own
   process doing whole logins (password step, then a pyotp code). Baseline in
   the same run, just before and just after each round: N processes doing nothing
   but argon2id verifies with the configured parameters (m=19456 KiB, t=2, p=1).
   Target: logins/s >= 0.8 x their mean; the median of the rounds is the figure.
5. During the same load, a monitor polls the event store and the audit view
   (every 10 ms) and records for each new position the time from first seen
   committed to first seen in the audit view. Target: p99 < 200 ms on PostgreSQL.

    .venv/bin/python bench/login_throughput.py --store both --seconds 10 --users 1500 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def _verify_for(seconds: float) -> int:
    sys.path.insert(0, str(h.ROOT))
    from application.passwords import Argon2Hasher

    hasher = Argon2Hasher()
    stored = hasher.hash(h.PASSWORD)
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        assert hasher.verify(stored, h.PASSWORD)
        count += 1
    return count


def argon2_rate(processes: int, seconds: float) -> float:
    """Verifies per second of ``processes`` processes verifying side by side."""
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_verify_for, [0.2] * processes))  # start and warm
        started = time.perf_counter()
        counts = list(pool.map(_verify_for, [seconds] * processes))
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed


class LagMonitor(threading.Thread):
    """Commit-to-visible times of new positions, polled from both sides."""

    def __init__(self, store: h.Store, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.interval = interval
        self.lags: list[float] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._watch()
        except Exception as e:  # reported with the figures, not lost in a thread
            self.error = f"{type(e).__name__}: {e}"

    def _watch(self) -> None:
        events = self.store.connect()
        audit = self.store.connect_audit()
        try:
            seen: dict[int, float] = {}
            top = events.execute(self.store.max_position_sql).fetchone()[0] or 0
            visible = top
            while not self.stop.is_set():
                now = time.perf_counter()
                new_top = events.execute(self.store.max_position_sql).fetchone()[0] or 0
                for position in range(top + 1, new_top + 1):
                    seen[position] = now
                top = max(top, new_top)
                shown = audit.execute("SELECT MAX(position) FROM audit_v2").fetchone()[0] or 0
                now = time.perf_counter()
                for position in range(visible + 1, shown + 1):
                    if position in seen:
                        self.lags.append(now - seen.pop(position))
                visible = max(visible, shown)
                self.stop.wait(self.interval)
        finally:
            events.close()
            audit.close()


def measure(kind: str, args: argparse.Namespace, workers: int) -> list[float]:
    """The ratio of each round: logins/s over the mean of the verify rates just before and after."""
    ratios = []
    with h.scratch_store(kind) as store:
        started = time.perf_counter()
        with h.Seeder(store) as seeder:
            seeder.environment()
            users = seeder.registered_users(0, args.users * args.rounds, keep=False)
        print(f"[{kind}] seeded {len(users):,} users with authenticators "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        for round in range(args.rounds):
            # Each round its own users: a time step is accepted once per user.
            mine = users[round * args.users : (round + 1) * args.users]
            before = argon2_rate(workers, args.seconds)
            rate = login_round(kind, store, args, workers, mine)
            after = argon2_rate(workers, args.seconds)
            baseline = (before + after) / 2
            ratios.append(rate / baseline)
            print(f"[{kind}] round {round + 1}: argon2id verify (m=19456 KiB, t=2, p=1), "
                  f"{workers} processes, before {before:.1f} and after {after:.1f} "
                  f"verifies/s; ratio logins/s / verifies/s = {rate / baseline:.2f} "
                  "(target >= 0.8)")  # fmt: skip
    return ratios


def login_round(
    kind: str, store: h.Store, args: argparse.Namespace, workers: int, users: list[str]
) -> float:
    with h.aero_serve(store, workers) as server:
        print(f"[{kind}] server: {server.command} (workers: {len(server.workers())})")
        monitor = LagMonitor(store)
        monitor.start()
        ledger = h.CpuLedger(server=[server.process.pid, *server.workers()],
                             postgres=h.postgres_pids() if kind == "postgres" else [],
                             bench=[os.getpid()])  # fmt: skip
        ledger.start()
        result = h.run_loadgen({"mode": "full", "url": server.url, "seconds": args.seconds,
                                "concurrency": args.concurrency, "users": users,
                                "client": args.client})  # fmt: skip
        ledger.stop()
        time.sleep(1.0)  # let the views take the last logins
        monitor.stop.set()
        monitor.join()
    rate: float = result["rate"]
    print(f"[{kind}] full logins: {result['ok']:,} in {result['elapsed']:.1f} s = "
          f"{rate:.1f} logins/s, latency p50 {result['p50_ms']:.0f} ms, "
          f"p99 {result['p99_ms']:.0f} ms, concurrency {result['concurrency']}, "
          f"client {result['client']}, errors {result['errors'] or 0}")  # fmt: skip
    logins = max(result["ok"], 1)
    spent = {**ledger.spent, "load generator": result["cpu_seconds"]}
    budget = h.nproc() * 1000 / rate if rate else 0.0
    print(f"[{kind}] CPU per login, ms ({h.nproc()} cores at this rate = {budget:.1f} ms "
          f"of core time per login): "
          + ", ".join(f"{name} {seconds * 1000 / logins:.1f}"
                      for name, seconds in spent.items()))  # fmt: skip
    lags = monitor.lags
    print(f"[{kind}] projection lag (commit -> audit view) over {len(lags):,} events: "
          f"p50 {h.percentile(lags, 50) * 1000:.0f} ms, "
          f"p99 {h.percentile(lags, 99) * 1000:.0f} ms, "
          f"max {max(lags, default=float('nan')) * 1000:.0f} ms"
          + (" (target p99 < 200 ms)" if kind == "postgres" else "")
          + (f" MONITOR FAILED: {monitor.error}" if monitor.error else ""))  # fmt: skip
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=300, help="users per round")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds per store, each between two baseline runs")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=h.nproc())
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="the load generator's HTTP client (bench/_loadgen.py)")  # fmt: skip
    args = parser.parse_args()
    h.header("full login over HTTP vs raw argon2id verifies (benchmarks 1 and 5)")
    for kind in h.stores(args.store):
        try:
            ratios = measure(kind, args, args.workers)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")
            continue
        print(f"[{kind}] ratio, median of {len(ratios)} round(s): "
              f"{statistics.median(ratios):.2f} (target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
