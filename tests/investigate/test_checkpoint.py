"""``aero-auth audit checkpoint`` and ``verify-audit --checkpoint``: a signed chain head kept
elsewhere, which a later chain must extend."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from application.clock import FixedClock
from application.service import AeroAuth
from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from projections.audit_chain import GENESIS, chain_hash
from projections.live import LiveReadModels
from tests.conftest import DatabaseUnderTest
from tests.investigate import test_verify
from tests.investigate.script import ENV
from tests.investigate.test_verify import audit_position, cli_env
from tests.projections.conftest import raw_sql

runner = CliRunner()
live = test_verify.live  # the scripted history with its live views


def aero(settings: Settings, *args: str) -> Result:
    return runner.invoke(cli, list(args), env=cli_env(settings), catch_exceptions=False)


def test_a_checkpoint_verifies_while_the_chain_grows_and_is_signed(
    app: AeroAuth, live: LiveReadModels, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "acme.checkpoint.json"
    made = aero(settings, "audit", "checkpoint", ENV, "--out", str(out))
    assert made.exit_code == 0, made.output
    fields = json.loads(out.read_text())
    head = live.views.audit.chain_head(ENV)
    assert head is not None
    assert (fields["environment"], fields["position"], fields["chain_head"]) == (ENV, *head)
    assert (settings.data_dir / "audit-checkpoint.pem").stat().st_mode & 0o777 == 0o600

    app.change_groups(ENV, "dave", ["night"])
    assert live.wait_for(app.recorder.max_notification_id() or 0, timeout=10)
    checked = aero(settings, "verify-audit", ENV, "--checkpoint", str(out))
    assert checked.exit_code == 0, checked.output
    assert "extends the checkpoint" in checked.stdout

    # Any field changed after signing: the signature no longer verifies.
    out.write_text(json.dumps({**fields, "position": fields["position"] - 1}))
    bad = aero(settings, "verify-audit", ENV, "--checkpoint", str(out))
    assert bad.exit_code == 1
    assert "signature" in bad.stderr


def test_a_chain_rewritten_with_the_audit_key_no_longer_extends_the_checkpoint(
    live: LiveReadModels, settings: Settings, database: DatabaseUnderTest, tmp_path: Path
) -> None:
    out = tmp_path / "acme.checkpoint.json"
    assert aero(settings, "audit", "checkpoint", ENV, "--out", str(out)).exit_code == 0
    # Someone holding the audit key and database access changes a row and
    # recomputes every later hash: the chain itself is intact again.
    audit = live.views.audit
    position = audit_position(live, "two_factor_reset", "bob")
    previous = GENESIS
    for entry, event, stored in audit.chained(ENV, 0, 2**62, 10_000):
        if entry.position == position:
            entry = dataclasses.replace(entry, actor="mallory")
            update = "UPDATE audit_v2_a SET actor = 'mallory' WHERE position = ?"
            raw_sql(database, live, update, position)
        if entry.position >= position:
            stored = chain_hash(audit.chain_key, previous, entry, event)
            update = "UPDATE audit_v2_a SET hash = ? WHERE position = ?"
            raw_sql(database, live, update, stored, entry.position)
        previous = stored
    update = "UPDATE audit_v2_a_chain SET hash = ? WHERE environment = ?"
    raw_sql(database, live, update, previous, ENV)
    assert aero(settings, "verify-audit", ENV).exit_code == 0

    result = aero(settings, "verify-audit", ENV, "--checkpoint", str(out))
    assert result.exit_code == 1
    assert "differs from the checkpoint" in result.stderr


def test_a_checkpoint_signed_by_another_key_is_refused(
    live: LiveReadModels, settings: Settings, tmp_path: Path, clock: FixedClock
) -> None:
    out = tmp_path / "acme.checkpoint.json"
    other = settings.model_copy(update={"data_dir": tmp_path / "elsewhere"})
    # Another checkpoint key (an intruder's), with the same audit key: a well-signed file.
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "elsewhere" / "audit.key").write_bytes(
        (settings.data_dir / "audit.key").read_bytes()
    )
    assert aero(other, "audit", "checkpoint", ENV, "--out", str(out)).exit_code == 0
    assert (
        aero(settings, "audit", "checkpoint", ENV, "--out", str(tmp_path / "mine")).exit_code == 0
    )
    result = aero(settings, "verify-audit", ENV, "--checkpoint", str(out))
    assert result.exit_code == 1
    assert "another key" in result.stderr
