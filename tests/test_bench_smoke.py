"""The benchmarks under bench/ still run: each script, tiny parameters, in a subprocess.

Only that each exits 0 and prints its command and its figures: timings on a
shared CI machine say nothing, so nothing here asserts on them. Marked ``slow``
(``-m "not slow"`` leaves them out locally); CI runs every test, these included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a benchmark in a process group of its own: on a timeout the servers it
    started go with it, instead of living on without their scratch store."""
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

SCRIPTS = {
    "login_throughput.py": (
        ["--seconds", "1", "--users", "60", "--concurrency", "4"],
        ["verifies/s", "logins/s", "CPU per login", "projection lag", "ratio, median"],
    ),
    "login_breakdown.py": (
        ["--verifies", "2", "--logins", "20", "--past", "3", "--seconds", "0.5"],
        ["argon2id verify", "between two threads", "application", "into their history",
         "bare FastAPI, sync", "aero-auth /healthz", "full login over HTTP"],
    ),
    "code_step.py": (
        ["--seconds", "1", "--users", "150", "--concurrency", "4", "--history", "150",
         "--samples", "3"],
        ["code step:", "bare endpoint:", "ratio code steps/s", "verify_code p50"],
    ),
    "audit_rebuild.py": (
        ["--events", "1500", "--users", "50"],
        ["raw SELECT:", "audit rebuild", "ratio rebuild"],
    ),
    "federated_login.py": (
        ["--logins", "2"],
        ["start (POST login/oidc)", "callback (code exchange", "whole login"],
    ),
    "memory.py": (
        ["--users", "50", "--events", "600", "--seconds", "0.5", "--login-users", "50"],
        ["RSS", "MiB"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_runs_and_prints_its_figures_and_command(script: str) -> None:
    arguments, figures = SCRIPTS[script]
    done = run_script([sys.executable, f"bench/{script}", "--store", "both", *arguments], 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"command: cd {ROOT} && " in done.stdout
    assert f"bench/{script}" in done.stdout
    for figure in figures:
        assert figure in done.stdout, (figure, done.stdout)


@pytest.mark.slow
def test_versus_peer_serves_both_parties_on_sqlite_and_prints_the_table() -> None:
    # CI's smoke of the comparison: every party logs users in without an
    # error and the figures are printed; how fast says nothing here.
    done = run_script(
        [sys.executable, "bench/versus_peer.py", "--store", "sqlite", "--seconds", "1",
         "--users", "40", "--yardstick", "0.3", "--concurrency", "4"],
        180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"command: cd {ROOT} && " in done.stdout
    assert "bench/versus_peer.py --store sqlite" in done.stdout
    assert "'m=19456,t=2,p=1'" in done.stdout  # the peer's stored hash
    runs = [line for line in done.stdout.splitlines() if " full logins in " in line]
    assert [line.split(", ")[1].split(":")[0] for line in runs] == [
        "aero-auth", "peer sync", "peer gthread"
    ], done.stdout  # fmt: skip
    for line in runs:
        assert line.endswith("errors 0"), line
    for figure in ["server processes:", "MiB RSS", "CPU per login", "load generator",
                   "| aero-auth |", "| peer sync |", "| peer gthread |",
                   "target logins/s", "target p99", "target server RSS"]:  # fmt: skip
        assert figure in done.stdout, (figure, done.stdout)
