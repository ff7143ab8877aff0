"""What every benchmark shares: the command line it prints, the store option, the
load generator, and the figures.

Nothing here is a test. Each benchmark script prints the exact command that
produced its figures, and measures its baseline in the same run. The scripts
reach the stores (_stores.py), seeding (_seeding.py) and the served aero-auth
(_serving.py) through this module, which re-exports them.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from _seeding import SEED_BATCH as SEED_BATCH
from _seeding import Seeder as Seeder
from _seeding import totp_secret as totp_secret
from _seeding import username as username
from _serving import CpuLedger as CpuLedger
from _serving import Server as Server
from _serving import aero_serve as aero_serve
from _serving import children as children
from _serving import cpu_seconds as cpu_seconds
from _serving import free_port as free_port
from _serving import postgres_pids as postgres_pids
from _serving import rss_mib as rss_mib
from _serving import serve as serve
from _serving import wait_ready as wait_ready
from _serving import wait_workers as wait_workers
from _stores import ENV as ENV
from _stores import OPERATOR_TOKEN as OPERATOR_TOKEN
from _stores import PASSWORD as PASSWORD
from _stores import PG_HOST as PG_HOST
from _stores import PG_PORT as PG_PORT
from _stores import PG_USER as PG_USER

# Re-exported for the scripts (``import _harness as h``).
from _stores import ROOT as ROOT
from _stores import Store as Store
from _stores import Unreachable as Unreachable
from _stores import scratch_store as scratch_store
from _stores import secret_key as secret_key
from _stores import server_environ as server_environ
from _stores import settings as settings


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
