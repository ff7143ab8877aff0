"""Issue 6, benchmark 6: resident memory of one server process over a large store.

In the same run: an ``aero-auth serve`` process (one worker, so the process
that serves is the one measured) over a store holding only an environment
and a few users as the baseline; then over a store with --users users (authenticators
registered) and about --events events. Each is measured after /readyz (the
read models have caught up with the whole store at start) and after
--seconds of full logins spread over the users. Target: < 300 MB.

    .venv/bin/python bench/memory.py --store both --users 100000 --events 1000000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

BASELINE_USERS = 10  # the baseline store: an environment and a few users, same logins


def measure(kind: str, users: int, events: int, args: argparse.Namespace) -> tuple[float, float]:
    with h.scratch_store(kind) as store:
        started = time.perf_counter()
        with h.Seeder(store) as seeder:
            seeder.environment()
            names = seeder.registered_users(0, users) if users else []
            if events > 5 * users + 2 and names:
                seeder.filler(events - 5 * users - 2, names)
            total = seeder.app.recorder.max_notification_id() or 0
            seeder.users.clear()
        label = f"{users:,} users, {total:,} events"
        print(f"[{kind}] {label}: filled in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        with h.aero_serve(store, 1, log_name=f"server-{users}.log") as server:
            (pid,) = server.workers()
            ready = h.rss_mib(pid)
            print(f"[{kind}] {label}: ready after {time.perf_counter() - started:.1f} s, "
                  f"RSS {ready:.0f} MiB")  # fmt: skip
            if names:
                sample = random.Random(6).sample(names, min(len(names), args.login_users))
                result = h.run_loadgen({"mode": "full", "url": server.url,
                                        "seconds": args.seconds, "concurrency": 8,
                                        "users": sample})  # fmt: skip
                print(f"[{kind}] {label}: {result['ok']:,} full logins over "
                      f"{len(sample):,} users, errors {result['errors'] or 0}")  # fmt: skip
            after = h.rss_mib(pid)
            peak = _hwm(pid)
            print(f"[{kind}] {label}: RSS after logins {after:.0f} MiB, peak {peak:.0f} MiB")
        return after, peak


def _hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--login-users", type=int, default=2000,
                        help="users the logins rotate over")  # fmt: skip
    args = parser.parse_args()
    h.header("RSS of one server process (benchmark 6)")
    for kind in h.stores(args.store):
        try:
            base, _ = measure(kind, BASELINE_USERS, 0, args)
            after, peak = measure(kind, args.users, args.events, args)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")
            continue
        print(f"[{kind}] RSS {after:.0f} MiB (peak {peak:.0f} MiB) vs {base:.0f} MiB with "
              f"{BASELINE_USERS} users: +{after - base:.0f} MiB "
              f"(target < 300 MB = {300e6 / 2**20:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
