"""The password step under parallel wrong passwords: a known user against an unknown one.

Each round sends ``--parallel`` wrong passwords at once, released together by a
barrier, for a user who exists (a fresh one each round, so every round starts
from no failures and runs into the lockout of SECURITY.md 10 as an attacker
would), then as many for a username that does not exist. The application is
called in-process from threads, as the HTTP layer's thread pool calls it; argon2
releases the GIL while it hashes. Timing equal for both users means the answer
time does not tell whether a user exists (SECURITY.md 9), and the hash counts
show how many argon2 verifications one request costs.

    .venv/bin/python bench/password_step_parallel.py --store both --rounds 5 --parallel 12
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _harness import (
    Unreachable,
    add_store_argument,
    header,
    median,
    percentile,
    scratch_store,
    settings,
    stores,
)

from application.clock import SystemClock
from domain.errors import InvalidCredentialsError
from interfaces.composition import build_application

ADMIN_PASSWORD = "correct horse battery staple"
USER_PASSWORD = "a sound passphrase 4711"


class CountingHasher:
    """The application's hasher, counting the argon2 verifications it makes."""

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        self._lock = threading.Lock()
        self.verifications = 0

    def _count(self) -> None:
        with self._lock:
            self.verifications += 1

    def verify(self, *args: Any) -> bool:
        self._count()
        return bool(self._hasher.verify(*args))

    def verify_dummy(self, *args: Any) -> None:
        self._count()
        self._hasher.verify_dummy(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hasher, name)


def burst(parallel: int, attempt: Callable[[], str]) -> list[tuple[float, str]]:
    """``parallel`` calls of ``attempt`` released at once: (seconds, outcome) each."""
    barrier = threading.Barrier(parallel)

    def one() -> tuple[float, str]:
        barrier.wait()
        started = time.perf_counter()
        outcome = attempt()
        return time.perf_counter() - started, outcome

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda _: one(), range(parallel)))


def measure(kind: str, rounds: int, parallel: int) -> None:
    with scratch_store(kind) as store:
        app = build_application(settings(store), clock=SystemClock())
        hasher = CountingHasher(app.hasher)
        app.hasher = hasher  # type: ignore[assignment]
        app.create_environment("bench", "Bench", "Bench Issuer", "alice", ADMIN_PASSWORD)

        def wrong_password(username: str) -> Callable[[], str]:
            def attempt() -> str:
                try:
                    app.start_login("bench", username, "not the password at all")
                except InvalidCredentialsError:
                    return "401"
                except Exception as e:  # what the HTTP layer would answer 500 to
                    return f"error:{type(e).__name__}"
                return "accepted"

            return attempt

        results: dict[str, list[tuple[float, str]]] = {"known": [], "unknown": []}
        hashes: dict[str, int] = {"known": 0, "unknown": 0}
        for r in range(rounds):
            known = f"known-{r}"
            app.create_user("bench", known, USER_PASSWORD)
            for who, username in (("known", known), ("unknown", f"nobody-{r}")):
                before = hasher.verifications
                results[who] += burst(parallel, wrong_password(username))
                hashes[who] += hasher.verifications - before
        app.close()

    print(f"\n## {kind}: {rounds} rounds x {parallel} parallel wrong passwords per user")
    for who in ("known", "unknown"):
        ms = [seconds * 1000 for seconds, _ in results[who]]
        outcomes: dict[str, int] = {}
        for _, outcome in results[who]:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print(
            f"{who:8s} median {median(ms):7.1f} ms  p90 {percentile(ms, 90):7.1f} ms  "
            f"mean {statistics.fmean(ms):7.1f} ms  "
            f"argon2 verifications/request {hashes[who] / len(ms):.2f}  outcomes {outcomes}"
        )
    ratio = median([s for s, _ in results["known"]]) / median([s for s, _ in results["unknown"]])
    print(f"known/unknown median ratio {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_argument(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=12)
    args = parser.parse_args()
    header("password step: known against unknown user under parallel wrong passwords")
    for kind in stores(args.store):
        try:
            measure(kind, args.rounds, args.parallel)
        except Unreachable as e:
            print(f"\n## {kind}: skipped, {e}")


if __name__ == "__main__":
    main()
