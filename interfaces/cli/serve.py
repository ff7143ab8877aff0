"""``aero-auth serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import copy
import sys
from typing import Annotated, Any

import typer
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from interfaces.composition import operator_token, secret_box
from interfaces.settings import Settings, from_environment
from interfaces.tokens import load_signing_key

FACTORY = "interfaces.http.app:app_from_environment"


def prepare_first_start(settings: Settings) -> None:
    """Create the keys and the operator token once, before any worker starts, so that
    workers only read them; read_or_create says where it put each one."""
    secret_box(settings)
    load_signing_key(settings)
    operator_token(settings)
    if settings.operator_token is None:
        path = (settings.data_dir / "operator.token").resolve()
        print(f"aero-auth: the operator token is in {path}", file=sys.stderr)


def _log_config() -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["aero_auth"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Serve the HTTP API; settings come from AERO_* environment variables."""
    prepare_first_start(from_environment())
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Our own access log names route templates and escapes client values;
        # X-Forwarded-For is honoured only from AERO_TRUSTED_PROXIES, by the app.
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=_log_config(),
    )
