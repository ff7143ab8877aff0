"""Events described for investigators: a timeline entry per event, secrets left out.

The types are the audit types of API.md, as the audit log (projections/audit_rules.py)
names them. Details are an allow-list per event type: a field added to an event
later stays hidden until someone decides it is safe here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.base import AeroAggregate
from domain.credential import UserCredential
from domain.environment import Environment
from domain.instants import rfc3339


@dataclass(frozen=True)
class TimelineEntry:
    """One event, described safely: ``details`` hold no hash, secret or challenge id."""

    stream: str  # "user" or "environment"
    version: int
    occurred_at: datetime
    type: str
    actor: str | None
    ip: str | None
    user_agent: str | None
    outcome: str  # "success" or "failure"
    details: dict[str, Any] = field(default_factory=dict)


_U = UserCredential
_E = Environment
_PROVIDER_FIELDS = (
    "issuer",
    "client_id",
    "display_name",
    "redirect_uris",
    "password_login",
    "provisioning",
    "username_claim",
    "groups_claim",
    "two_factor",
)
DESCRIPTIONS: dict[type[AeroAggregate.Event], tuple[str, tuple[str, ...]]] = {
    _E.Created: ("environment_created", ("slug", "display_name", "issuer")),
    _E.TwoFactorRequirementChanged: ("two_factor_requirement_changed", ("require_2fa",)),
    _E.GroupsSelected: ("groups_selected", ("groups",)),
    _U.Created: ("user_created", ("groups", "roles")),
    _U.GroupsChanged: ("groups_changed", ("groups",)),
    _U.RolesChanged: ("roles_changed", ("roles",)),
    _U.PasswordChanged: ("password_changed", ()),
    _U.PasswordRehashed: ("password_rehashed", ()),
    _U.PasswordStepSucceeded: ("login_password_succeeded", ("next_step", "expires_at")),
    _U.PasswordStepFailed: ("login_password_failed", ("reason",)),
    _U.PasswordStepLocked: ("password_step_locked", ("locked_until",)),
    _U.PasswordStepThrottled: ("login_password_failed", ("locked_until",)),
    _U.RegistrationStarted: ("two_factor_registration_started", ()),
    _U.AuthenticatorRegistered: ("two_factor_registered", ()),
    _U.CodeAccepted: ("two_factor_succeeded", ()),
    _U.CodeRejected: ("two_factor_failed", ("kind", "reason")),
    _U.CodeReplayed: ("two_factor_code_replayed", ()),
    _U.CodeStepLocked: ("two_factor_locked", ("locked_until",)),
    _U.CodeStepThrottled: ("two_factor_throttled", ("reason",)),
    _U.AuthenticatorDisabled: ("two_factor_disabled", ("total_failures",)),
    _U.TwoFactorReset: ("two_factor_reset", ("reason",)),
    _U.TwoFactorSecretReencrypted: (
        "two_factor_key_rotated",
        ("stage", "previous_key_id", "key_id"),
    ),
    _U.RecoveryCodesIssued: ("recovery_codes_issued", ()),
    _U.RecoveryCodeUsed: ("recovery_code_used", ("remaining",)),
    _U.LoginSucceeded: ("login_succeeded", ("method",)),
    _U.PasswordLoginRefused: ("login_password_failed", ("reason",)),
    _U.IdentityLinked: ("identity_linked", ("issuer", "subject")),
    _U.IdentityUnlinked: ("identity_unlinked", ("issuer", "subject")),
    _U.FederatedStepSucceeded: (
        "login_federated_succeeded",
        ("issuer", "subject", "two_factor", "mfa", "next_step", "expires_at"),
    ),
    # Never the client secret, not even encrypted.
    _E.IdentityProviderConnected: ("identity_provider_connected", _PROVIDER_FIELDS),
    _E.IdentityProviderChanged: ("identity_provider_changed", _PROVIDER_FIELDS),
    _E.IdentityProviderDisconnected: ("identity_provider_disconnected", ("issuer",)),
}
_CONSTANT_DETAILS: dict[type[AeroAggregate.Event], dict[str, str]] = {
    _U.PasswordStepThrottled: {"reason": "throttled"},
    _U.CodeAccepted: {"kind": "totp"},
}
FAILURES: frozenset[type[AeroAggregate.Event]] = frozenset(
    {
        _U.PasswordStepFailed,
        _U.PasswordStepLocked,
        _U.PasswordStepThrottled,
        _U.CodeRejected,
        _U.CodeReplayed,
        _U.CodeStepLocked,
        _U.CodeStepThrottled,
        _U.AuthenticatorDisabled,
        _U.PasswordLoginRefused,
    }
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _plain(value: object) -> object:
    if isinstance(value, frozenset | set | tuple | list):
        return sorted(str(v) for v in value)
    if isinstance(value, datetime):
        return rfc3339(value)
    return value


def describe(event: AeroAggregate.Event, stream: str) -> TimelineEntry:
    """An event as a timeline entry, exposing only the allow-listed details."""
    kind, fields = DESCRIPTIONS.get(type(event), (_snake(type(event).__name__), ()))
    details: dict[str, Any] = dict(_CONSTANT_DETAILS.get(type(event), {}))
    details.update({name: _plain(getattr(event, name)) for name in fields})
    if isinstance(event, UserCredential.RecoveryCodesIssued):
        details["count"] = len(event.code_hashes)
    return TimelineEntry(
        stream=stream,
        version=event.originator_version,
        occurred_at=event.timestamp,
        type=kind,
        actor=event.actor,
        ip=event.ip,
        user_agent=event.user_agent,
        outcome="failure" if type(event) in FAILURES else "success",
        details=details,
    )
