"""A command other than ``serve`` loads no web stack: the composition root imports the
HTTP app, the web UI, tokens and the identity provider's client only where it builds
them. A garbage collection walks every object a process holds, so a rebuild in a
process with FastAPI and Jinja loaded paid for them on every full collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from application.service import AeroAuth
from interfaces.composition import prepare_first_start
from interfaces.settings import Settings
from tests.support import cli_env

ROOT = Path(__file__).resolve().parents[2]

# Runs commands of the CLI in one process, then names the top-level packages it loaded.
RUN_AND_LIST = """
import json, sys
from typer.testing import CliRunner
from interfaces.cli.main import app
for command in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, (command, result.exit_code, result.output)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""

WEB_STACK = {"fastapi", "starlette", "jinja2", "uvicorn", "authlib", "httpx", "jwt"}


@pytest.mark.parametrize(
    "commands",
    [
        [["rebuild", "audit"], ["verify-audit", "acme"]],
        [["rebuild", "audit"], ["rebuild", "directory"], ["investigate", "verify"]],
        [["keys", "status"]],
    ],
    ids=lambda commands: ", then ".join(" ".join(c) for c in commands),
)
def test_commands_load_no_web_stack(
    commands: list[list[str]], app: AeroAuth, settings: Settings
) -> None:
    prepare_first_start(settings)
    app.create_environment("acme", "Acme", "BizzStream Aero", "alice", "correct horse battery")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AERO_")}
    environ.update(cli_env(settings))
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, json.dumps(commands)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "eventsourcing" in loaded  # the command ran against the store
    assert loaded & WEB_STACK == set()
