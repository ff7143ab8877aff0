"""aero-auth against its peer, Django with django-otp (bench/peer_django), full logins side by side.

Both served on the same cores, each with its own store of the same kind and
the same users (names, password, authenticator secrets): aero-auth as
``aero-auth serve`` as it starts by default (one process whose hash slots use
every core; ``--aero-workers`` for more processes), the peer by gunicorn with N
sync workers (N = cores: a sync worker hashes on one core at a time) and, as a
second variant, N gthread workers (``--threads``). One load generator
(bench/_loadgen.py, 16 logins in flight by default) drives each in turn, the
rounds interleaved (aero-auth, peer sync, peer gthread, aero-auth, ...), each
run bracketed by the argon2id yardstick (N processes verifying with m=19456
KiB, t=2, p=1: the rate a login cannot beat on these cores), a fresh server
and its own users per run. Printed per run and as medians: logins/s, the ratio
to the yardstick, p50/p99 latency, errors, the RSS of every server process
(and their PSS, which counts a page shared by forked processes once), and CPU
per login by party.

Targets (aero-auth against the peer, same run, each store): logins/s >= 1.2 x
the peer's best variant; p99 <= the peer's; the RSS of all server processes
together <= 1.3 x the peer's (sync workers).

    .venv/bin/python bench/versus_peer.py --store both --seconds 15 --users 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h
from login_throughput import argon2_rate

BENCH = Path(__file__).resolve().parent
AERO = "aero-auth"


# ----- the peer -----


def peer_environ(store: h.Store, secret: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PEER_", "AERO_"))}
    environ.update(
        PEER_SECRET_KEY=secret, PYTHONPATH=str(BENCH), DJANGO_SETTINGS_MODULE="peer_django.settings"
    )
    if store.kind == "sqlite":
        environ.update(PEER_DB="sqlite", PEER_SQLITE_PATH=str(store.directory / "peer.db"))
    else:
        environ.update(
            PEER_DB="postgres",
            PEER_PG_NAME=store.pg_dbname,
            PEER_PG_HOST=h.PG_HOST,
            PEER_PG_PORT=str(h.PG_PORT),
            PEER_PG_USER=h.PG_USER,
        )
    return environ


def seed_peer(environ: dict[str, str], users: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "peer_django.seed", "--users", str(users)],
        env=environ,
        cwd=h.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding the peer failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def worker_pids_seen(url: str, workers: int, timeout: float = 60) -> set[int]:
    """Ask /readyz (a new connection each time) until every worker has answered:
    keep-alive connections opened while one still boots would all go to the others."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {sorted(seen)} of {workers} answered")
        with suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:  # noqa: S310
            seen.add(json.loads(r.read())["pid"])
    return seen


@contextmanager
def peer_serve(
    store: h.Store, environ: dict[str, str], variant: str, workers: int, threads: int
) -> Iterator[h.Server]:
    port = h.free_port()
    argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers",
        str(workers),
        "--worker-class",
        variant,
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--no-control-socket",
        "--pythonpath",
        str(BENCH),
    ]
    if variant == "gthread":
        argv += ["--threads", str(threads)]
    argv.append("peer_django.wsgi:application")
    log = store.directory / f"peer-{variant}.log"
    # One listening socket shared by the workers: wait for each to answer instead.
    with h.serve(argv, environ, port, log, workers=1) as server:
        worker_pids_seen(server.url, workers)
        yield server


# ----- processes -----


def descendants(pid: int) -> list[int]:
    found = []
    for child in h.children(pid):
        found += [child, *descendants(child)]
    return found


def pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


def process_memory(master: int) -> list[tuple[str, float, float]]:
    """(role, RSS MiB, PSS MiB) of the master and each process under it."""
    out = [("master", h.rss_mib(master), pss_mib(master))]
    for pid in descendants(master):
        with suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_text()
            role = "tracker" if "resource_tracker" in cmdline else "worker"
            out.append((role, h.rss_mib(pid), pss_mib(pid)))
    return out


# ----- runs -----


@dataclass
class Run:
    system: str
    rate: float = 0.0
    ok: int = 0
    elapsed: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    memory: list[tuple[str, float, float]] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    baseline: float = 0.0
    yardsticks: tuple[float, float] = (0.0, 0.0)

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else 0.0

    @property
    def rss(self) -> float:
        return sum(rss for _, rss, _ in self.memory)

    @property
    def pss(self) -> float:
        return sum(pss for _, _, pss in self.memory)

    def memory_text(self) -> str:
        parts = [f"{role} {rss:.0f}" for role, rss, _ in self.memory]
        return f"{' + '.join(parts)} = {self.rss:.0f} MiB RSS ({self.pss:.0f} MiB PSS)"


def drive(
    kind: str, system: str, server: h.Server, users: list[str], args: argparse.Namespace
) -> Run:
    processes = [server.process.pid, *descendants(server.process.pid)]
    ledger = h.CpuLedger(
        server=processes,
        postgres=h.postgres_pids() if kind == "postgres" else [],
        bench=[os.getpid()],
    )
    config = {
        "mode": "full",
        "url": server.url,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "users": users,
    }
    if system.endswith("gthread"):
        config["idle_limit"] = 1.5  # gunicorn closes an idle keep-alive connection after 2 s
    ledger.start()
    result = h.run_loadgen(config)
    ledger.stop()
    run = Run(
        system,
        rate=result["rate"],
        ok=result["ok"],
        elapsed=result["elapsed"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=result["errors"],
        memory=process_memory(server.process.pid),
    )
    if run.ok > len(users):
        # django-otp moves a device's drift to the step last accepted
        # (OTP_TOTP_SYNC), which a user's next login in this run may miss.
        print(f"[{kind}] note: {run.ok} logins by {len(users)} users; give more --users")
    logins = max(run.ok, 1)
    spent = {**ledger.spent, "load generator": result["cpu_seconds"]}
    run.cpu_ms = {name: seconds * 1000 / logins for name, seconds in spent.items()}
    return run


def report(kind: str, number: int, run: Run) -> None:
    budget = h.nproc() * 1000 / run.rate if run.rate else 0.0
    print(
        f"[{kind}] round {number}, {run.system}: {run.ok:,} full logins in "
        f"{run.elapsed:.1f} s = {run.rate:.1f}/s; argon2id {run.yardsticks[0]:.1f} before, "
        f"{run.yardsticks[1]:.1f} after: ratio {run.ratio:.2f}; p50 {run.p50_ms:.0f} ms, "
        f"p99 {run.p99_ms:.0f} ms; errors {run.errors or 0}"
    )
    print(f"[{kind}]   server processes: {run.memory_text()}")
    print(
        f"[{kind}]   CPU per login, ms ({h.nproc()} cores at this rate = {budget:.1f}): "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in run.cpu_ms.items())
    )
    sys.stdout.flush()


def measure(kind: str, args: argparse.Namespace) -> list[Run]:
    systems = [AERO, *(f"peer {variant}" for variant in args.variants)]
    total = args.users * args.rounds * len(systems)
    runs: list[Run] = []
    with h.scratch_store(kind) as aero_store, h.scratch_store(kind) as peer_store:
        started = time.perf_counter()
        with h.Seeder(aero_store) as seeder:
            seeder.environment()
            names = seeder.registered_users(0, total, keep=False)
        environ = peer_environ(peer_store, secrets.token_urlsafe(32))
        seeded = seed_peer(environ, total)
        print(
            f"[{kind}] seeded {total:,} users into each of aero-auth and the peer "
            f"({seeded}) in {time.perf_counter() - started:.1f} s"
        )
        yardstick = argon2_rate(args.workers, args.yardstick)
        for number in range(1, args.rounds + 1):
            for i, system in enumerate(systems):
                # Each run its own users: a time step is accepted once per user.
                first = ((number - 1) * len(systems) + i) * args.users
                users = names[first : first + args.users]
                if system == AERO:
                    serving = h.aero_serve(aero_store, args.aero_workers)
                else:
                    serving = peer_serve(
                        peer_store, environ, system.split()[1], args.workers, args.threads
                    )
                with serving as server:
                    if number == 1:
                        print(f"[{kind}] {system}: {server.command}")
                    run = drive(kind, system, server, users, args)
                after = argon2_rate(args.workers, args.yardstick)
                run.yardsticks = (yardstick, after)
                run.baseline = (yardstick + after) / 2
                yardstick = after
                report(kind, number, run)
                runs.append(run)
    return runs


def summary(kind: str, runs: list[Run]) -> None:
    systems = list(dict.fromkeys(run.system for run in runs))
    medians: dict[str, dict[str, float]] = {}
    print(f"[{kind}] medians of {len(runs) // len(systems)} round(s):")
    print(
        f"[{kind}]   | system | full logins/s | / argon2id rate | p50 / p99 ms | "
        "errors | server RSS (PSS) MiB | server CPU per login ms |"
    )
    for system in systems:
        mine = [run for run in runs if run.system == system]
        m = {
            name: h.median([getattr(run, name) for run in mine])
            for name in ("rate", "ratio", "p50_ms", "p99_ms", "rss", "pss")
        }
        m["cpu"] = h.median([run.cpu_ms["server"] for run in mine])
        errors = sum(sum(run.errors.values()) for run in mine)
        medians[system] = m
        print(
            f"[{kind}]   | {system} | {m['rate']:.1f} | {m['ratio']:.2f} | "
            f"{m['p50_ms']:.0f} / {m['p99_ms']:.0f} | {errors} | "
            f"{m['rss']:.0f} ({m['pss']:.0f}) | {m['cpu']:.1f} |"
        )
    peers = [system for system in systems if system != AERO]
    if AERO not in medians or not peers:
        return
    aero = medians[AERO]
    best = max(peers, key=lambda system: medians[system]["rate"])
    verdict = {True: "met", False: "missed"}
    throughput = aero["rate"] / medians[best]["rate"] if medians[best]["rate"] else 0.0
    print(
        f"[{kind}] target logins/s >= 1.2 x the peer's best ({best}): "
        f"{throughput:.2f} x, {verdict[throughput >= 1.2]}"
    )
    for peer in peers:
        p99 = medians[peer]["p99_ms"]
        print(
            f"[{kind}] target p99 <= the peer's ({peer}): {aero['p99_ms']:.0f} vs "
            f"{p99:.0f} ms, {verdict[aero['p99_ms'] <= p99]}"
        )
    if "peer sync" in medians:
        memory = aero["rss"] / medians["peer sync"]["rss"]
        print(
            f"[{kind}] target server RSS <= 1.3 x the peer's (sync): {memory:.2f} x, "
            f"{verdict[memory <= 1.3]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--seconds", type=float, default=3.0, help="load per run")
    parser.add_argument("--users", type=int, default=300, help="users per run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--yardstick", type=float, default=3.0, help="seconds of each argon2id yardstick run"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--workers", type=int, default=h.nproc(), help="the peer's workers and the yardstick's"
    )
    parser.add_argument(
        "--aero-workers",
        type=int,
        default=1,
        help="aero-auth's worker processes (1, as `aero-auth serve` starts by default)",
    )
    parser.add_argument("--threads", type=int, default=8, help="per gthread worker")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=("sync", "gthread"),
        default=["sync", "gthread"],
        help="the peer's gunicorn workers",
    )
    args = parser.parse_args()
    h.header("aero-auth vs Django + django-otp, full logins over HTTP")
    print(
        f"load: {args.concurrency} logins in flight, {args.seconds:g} s per run, "
        f"aero-auth {args.aero_workers} process(es), the peer {args.workers} workers, "
        "argon2id m=19456 KiB t=2 p=1"
    )
    for kind in h.stores(args.store):
        try:
            runs = measure(kind, args)
        except h.Unreachable as e:
            print(f"[{kind}] skipped: {e}")
            continue
        summary(kind, runs)


if __name__ == "__main__":
    main()
