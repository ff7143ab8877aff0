"""Signed checkpoints of an environment's audit chain head, kept by operators elsewhere.

The keyed chain (projections/audit_chain.py) stops someone who can write to
the database but does not hold the audit key. A checkpoint also stops someone
who holds both: it pins the hash of the chain at one position, signed with an
Ed25519 key, in a file the operator keeps away from the service. A later chain
must still have that hash at that position.

The file is JSON: ``environment``, ``position``, ``chain_head`` (hex), ``created_at``
(RFC 3339), ``public_key`` (raw Ed25519, base64) and ``signature`` (base64) over
the canonical JSON (keys sorted, no spaces, UTF-8) of the other fields.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from domain.instants import rfc3339
from projections.audit import AuditView, verify_chain

FIELDS = ("environment", "position", "chain_head", "created_at", "public_key")


class CheckpointError(Exception):
    """The checkpoint file cannot be read, or does not hold a checkpoint."""


@dataclass(frozen=True)
class CheckpointResult:
    ok: bool
    reason: str


def _signed_bytes(fields: dict[str, Any]) -> bytes:
    content = {name: fields[name] for name in FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def make_checkpoint(
    view: AuditView, environment: str, key: Ed25519PrivateKey, now: datetime
) -> dict[str, Any] | None:
    """A signed checkpoint of the environment's chain head; None when it has no entry."""
    head = view.chain_head(environment)
    if head is None:
        return None
    fields: dict[str, Any] = {
        "environment": environment,
        "position": head[0],
        "chain_head": head[1],
        "created_at": rfc3339(now),
        "public_key": public_key_text(key.public_key()),
    }
    fields["signature"] = base64.b64encode(key.sign(_signed_bytes(fields))).decode()
    return fields


def read_checkpoint(text: str) -> dict[str, Any]:
    try:
        fields = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"not JSON: {e}") from None
    if not isinstance(fields, dict) or any(name not in fields for name in (*FIELDS, "signature")):
        raise CheckpointError(f"a checkpoint holds {', '.join(FIELDS)} and signature")
    if not isinstance(fields["position"], int) or not isinstance(fields["chain_head"], str):
        raise CheckpointError("position must be an integer and chain_head a string")
    return fields


def check_checkpoint(
    view: AuditView,
    environment: str,
    fields: dict[str, Any],
    trusted: Ed25519PublicKey | None,
) -> CheckpointResult:
    """Whether the signature holds and the current chain extends the checkpoint.

    ``trusted``: the operator's checkpoint key when it is at hand; the file must
    then name it, so a file re-signed with another key is refused.
    """
    if fields["environment"] != environment:
        return CheckpointResult(False, f"the checkpoint is of {fields['environment']!r}")
    try:
        named = Ed25519PublicKey.from_public_bytes(base64.b64decode(fields["public_key"]))
        named.verify(base64.b64decode(fields["signature"]), _signed_bytes(fields))
    except (InvalidSignature, ValueError):
        return CheckpointResult(False, "the checkpoint's signature does not verify")
    if trusted is not None and public_key_text(trusted) != fields["public_key"]:
        return CheckpointResult(False, "the checkpoint is signed by another key than this one")
    position = fields["position"]
    rows = view.chained(environment, position - 1, position, 1)
    if not rows or rows[0][0].position != position:
        return CheckpointResult(False, f"the chain has no entry at position {position}")
    if rows[0][2] != fields["chain_head"]:
        return CheckpointResult(
            False, f"the chain's hash at position {position} differs from the checkpoint's"
        )
    report = verify_chain(view, environment)
    if not report.intact:
        return CheckpointResult(
            False, f"hash chain broken at position {report.first_broken_position}"
        )
    return CheckpointResult(True, f"the chain extends the checkpoint at position {position}")
