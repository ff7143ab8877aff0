"""TOTP secret keys by id: a start refuses keys that cannot decrypt the stored secrets,
and several keys let new secrets use a new one while older ones stay readable."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.composition import build_container
from interfaces.keys import KeyConfigurationError
from interfaces.settings import Settings
from tests.application.helpers import BOB, ENV, bob_registered, code_at, code_login

OLD = base64.b64encode(b"k" * 32).decode()  # the settings fixture's key, id k1
NEW = base64.b64encode(b"n" * 32).decode()


def started(settings: Settings, clock: FixedClock, **update: object) -> None:
    values = {k: SecretStr(v) if isinstance(v, str) else v for k, v in update.items()}
    container = build_container(settings.model_copy(update=values), clock=clock)
    container.close()


def test_a_replaced_key_stops_the_start_instead_of_failing_every_code_step(
    app: AeroAuth, settings: Settings, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    with pytest.raises(KeyConfigurationError, match="key 'k1' does not decrypt"):
        started(settings, clock, secret_key=NEW)


def test_secrets_under_a_key_id_not_configured_stop_the_start(
    app: AeroAuth, settings: Settings, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    with pytest.raises(KeyConfigurationError, match="key id\\(s\\) k1, which are not configured"):
        started(settings, clock, secret_keys=f"k2:{NEW}")


def test_a_store_without_secrets_starts_with_any_key(
    app: AeroAuth, settings: Settings, clock: FixedClock
) -> None:
    started(settings, clock, secret_key=NEW)


def test_several_keys_encrypt_under_the_first_and_read_the_older(
    app: AeroAuth, settings: Settings, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    rotated = settings.model_copy(update={"secret_keys": SecretStr(f"k2:{NEW},k1:{OLD}")})
    started(rotated, clock)
    container = build_container(rotated, clock=clock)
    try:
        again = container.application
        assert again.secret_box.current == "k2"
        challenge = code_login(again)
        # bob's secret was stored under k1: still read, so his code is accepted.
        again.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
        assert again.secret_box.encrypt("x", "u").startswith("k2.")
    finally:
        container.close()


def test_serve_refuses_to_start_with_one_line_and_exit_3(
    app: AeroAuth, settings: Settings, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AERO_")},
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_SECRET_KEY": NEW,
        "AERO_OPERATOR_TOKEN": "operator-token-for-tests",
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("aero-auth")), "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("aero-auth: configuration:")]
    assert "does not decrypt" in line
