"""The issue-6 benchmarks still run: each script, tiny parameters, in a subprocess.

Only that each exits 0 and prints its command and its figures: timings on a
shared CI machine say nothing, so nothing here asserts on them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--store", "both", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"command: cd {ROOT} && " in done.stdout
    assert f"bench/{script}" in done.stdout
    for figure in figures:
        assert figure in done.stdout, (figure, done.stdout)
