"""``aero-auth audit checkpoint``: a signed checkpoint of an environment's audit chain head.

``aero-auth verify-audit ENV --checkpoint FILE`` (interfaces/cli/views.py) checks one.
Exit status: 0 done, 1 finding (no entry to checkpoint), 2 usage, 3 configuration
or store unreachable.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from interfaces.checkpoints import make_checkpoint
from interfaces.composition import (
    ConfigurationError,
    build_views,
    checkpoint_signing_key,
    load_settings,
)
from interfaces.keys import KeyConfigurationError

app = typer.Typer(help="The audit log: signed checkpoints of its hash chain.", no_args_is_help=True)


def _fail(message: str, code: int) -> typer.Exit:
    print(f"aero-auth audit: {message}", file=sys.stderr)
    return typer.Exit(code=code)


@app.command("checkpoint")
def checkpoint(
    environment: Annotated[str, typer.Argument(help="the environment's slug")],
    out: Annotated[Path, typer.Option("--out", help="the new checkpoint file (JSON)")],
) -> None:
    """Write a signed checkpoint (position and hash of the chain head) to a new file.

    Keep the file away from the service (another host, write-once storage):
    ``aero-auth verify-audit ENV --checkpoint FILE`` then shows whether the
    chain still extends it. Signed with the operator's checkpoint key
    (AERO_AUDIT_CHECKPOINT_KEY_FILE, or audit-checkpoint.pem in the data
    directory, created on first use); the file carries the public key.
    """
    try:
        settings = load_settings()
        key = checkpoint_signing_key(settings, create=True)
        views = build_views(settings, pool_size=1, create_keys=False)
    except (ConfigurationError, KeyConfigurationError, ValueError) as e:
        raise _fail(f"configuration: {e}", 3) from None
    assert key is not None
    try:
        views.ensure()
        fields = make_checkpoint(views.audit, environment, key, datetime.now(UTC))
    except Exception as e:  # the store is unreachable: say why, then stop
        raise _fail(f"cannot read the audit log: {type(e).__name__}: {e}", 3) from None
    finally:
        views.close()
    if fields is None:
        raise _fail(f"{environment}: no audit entry to checkpoint", 1)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        raise _fail(f"cannot create {out}: {e}", 2) from None
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(fields, indent=2, sort_keys=True) + "\n")
    print(
        f"{environment}: checkpoint at position {fields['position']} written to {out}; "
        f"public key {fields['public_key']}"
    )
