"""How each event reads in the audit log: its type, its outcome, and the details it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.credential import UserCredential
from domain.environment import Environment
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.instants import rfc3339
from domain.service_credential import ServiceCredential
from domain.unknown_user import UnknownUserLogin

SUCCESS = "success"
FAILURE = "failure"


class UnknownTopicError(LookupError):
    """An event this version of the view does not know: never skipped silently."""


@dataclass(frozen=True)
class Rule:
    """How one kind of event reads in the audit log. ``details`` never copies a secret.

    A ``type`` of None writes no entry: the event is an index kept beside another
    event that is saved with it and makes the entry (an identity link).
    """

    type: str | None
    outcome: str
    details: Callable[[Any], dict[str, Any]]


def _nothing(event: Any) -> dict[str, Any]:
    return {}


def _locked_until(event: Any) -> dict[str, Any]:
    return {"locked_until": rfc3339(event.locked_until)}


def _provider_details(event: Any) -> dict[str, Any]:
    # Never the client secret, not even encrypted.
    return {
        "issuer": event.issuer,
        "client_id": event.client_id,
        "display_name": event.display_name,
        "redirect_uris": sorted(event.redirect_uris),
        "password_login": event.password_login,
        "provisioning": event.provisioning,
        "username_claim": event.username_claim,
        "groups_claim": event.groups_claim,
        "two_factor": event.two_factor,
    }


C = UserCredential
E = Environment

# Every event topic the domain records. A topic missing here stops the view.
RULES: dict[str, Rule] = {
    E.Created.TOPIC: Rule(
        "environment_created",
        SUCCESS,
        lambda e: {"display_name": e.display_name, "issuer": e.issuer},
    ),
    E.TwoFactorRequirementChanged.TOPIC: Rule(
        "two_factor_requirement_changed", SUCCESS, lambda e: {"require_2fa": e.require_2fa}
    ),
    E.GroupsSelected.TOPIC: Rule(
        "groups_selected", SUCCESS, lambda e: {"groups": sorted(e.groups)}
    ),
    C.Created.TOPIC: Rule(
        "user_created",
        SUCCESS,
        lambda e: {"groups": sorted(e.groups), "roles": sorted(e.roles)},
    ),
    C.PasswordChanged.TOPIC: Rule("password_changed", SUCCESS, _nothing),
    C.PasswordRehashed.TOPIC: Rule("password_rehashed", SUCCESS, _nothing),
    C.GroupsChanged.TOPIC: Rule("groups_changed", SUCCESS, lambda e: {"groups": sorted(e.groups)}),
    C.RolesChanged.TOPIC: Rule("roles_changed", SUCCESS, lambda e: {"roles": sorted(e.roles)}),
    C.PasswordStepSucceeded.TOPIC: Rule(
        "login_password_succeeded", SUCCESS, lambda e: {"next_step": e.next_step}
    ),
    C.PasswordStepFailed.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.PasswordStepThrottled.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "throttled", **_locked_until(e)}
    ),
    C.PasswordStepLocked.TOPIC: Rule("password_step_locked", FAILURE, _locked_until),
    C.RegistrationStarted.TOPIC: Rule("two_factor_registration_started", SUCCESS, _nothing),
    C.AuthenticatorRegistered.TOPIC: Rule("two_factor_registered", SUCCESS, _nothing),
    C.CodeAccepted.TOPIC: Rule("two_factor_succeeded", SUCCESS, lambda e: {"kind": "totp"}),
    C.CodeRejected.TOPIC: Rule(
        "two_factor_failed", FAILURE, lambda e: {"kind": e.kind, "reason": e.reason}
    ),
    C.CodeReplayed.TOPIC: Rule("two_factor_code_replayed", FAILURE, _nothing),
    C.CodeStepLocked.TOPIC: Rule("two_factor_locked", FAILURE, _locked_until),
    C.CodeStepThrottled.TOPIC: Rule(
        "two_factor_throttled", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.AuthenticatorDisabled.TOPIC: Rule(
        "two_factor_disabled", FAILURE, lambda e: {"total_failures": e.total_failures}
    ),
    C.TwoFactorReset.TOPIC: Rule("two_factor_reset", SUCCESS, lambda e: {"reason": e.reason}),
    # A key rotation: the key ids only, never the ciphertext (nor, of course, the secret).
    C.TwoFactorSecretReencrypted.TOPIC: Rule(
        "two_factor_key_rotated",
        SUCCESS,
        lambda e: {"stage": e.stage, "previous_key_id": e.previous_key_id, "key_id": e.key_id},
    ),
    C.RecoveryCodesIssued.TOPIC: Rule(
        "recovery_codes_issued", SUCCESS, lambda e: {"count": len(e.code_hashes)}
    ),
    C.RecoveryCodeUsed.TOPIC: Rule(
        "recovery_code_used", SUCCESS, lambda e: {"remaining": e.remaining}
    ),
    C.LoginSucceeded.TOPIC: Rule("login_succeeded", SUCCESS, lambda e: {"method": e.method}),
    UnknownUserLogin.Created.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "unknown_user"}
    ),
    ServiceCredential.Created.TOPIC: Rule(
        "service_credential_created", SUCCESS, lambda e: {"name": e.name}
    ),
    ServiceCredential.SecretIssued.TOPIC: Rule(
        "service_credential_created", SUCCESS, lambda e: {"name": e.name}
    ),
    ServiceCredential.Revoked.TOPIC: Rule(
        "service_credential_revoked", SUCCESS, lambda e: {"name": e.name}
    ),
    # ----- the identity provider -----
    C.PasswordLoginRefused.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": e.reason}
    ),
    E.IdentityProviderConnected.TOPIC: Rule(
        "identity_provider_connected", SUCCESS, lambda e: _provider_details(e)
    ),
    E.IdentityProviderChanged.TOPIC: Rule(
        "identity_provider_changed", SUCCESS, lambda e: _provider_details(e)
    ),
    E.IdentityProviderDisconnected.TOPIC: Rule(
        "identity_provider_disconnected", SUCCESS, lambda e: {"issuer": e.issuer}
    ),
    C.IdentityLinked.TOPIC: Rule(
        "identity_linked", SUCCESS, lambda e: {"issuer": e.issuer, "subject": e.subject}
    ),
    C.IdentityUnlinked.TOPIC: Rule(
        "identity_unlinked", SUCCESS, lambda e: {"issuer": e.issuer, "subject": e.subject}
    ),
    C.FederatedStepSucceeded.TOPIC: Rule(
        "login_federated_succeeded",
        SUCCESS,
        lambda e: {
            "issuer": e.issuer,
            "subject": e.subject,
            "two_factor": e.two_factor,
            "mfa": e.mfa,
            "next_step": e.next_step,
        },
    ),
    FederatedLogin.Created.TOPIC: Rule(
        "login_federated_started", SUCCESS, lambda e: {"redirect_uri": e.redirect_uri}
    ),
    FederatedLogin.CallbackClaimed.TOPIC: Rule(None, SUCCESS, _nothing),
    FederatedLogin.Completed.TOPIC: Rule(None, SUCCESS, _nothing),
    FederatedLogin.Failed.TOPIC: Rule(
        "login_federated_failed",
        FAILURE,
        lambda e: {"reason": e.reason, "subject": e.subject},
    ),
    RejectedCallback.Created.TOPIC: Rule(
        "login_federated_failed", FAILURE, lambda e: {"reason": e.reason, "subject": None}
    ),
    IdentityLink.Created.TOPIC: Rule(None, SUCCESS, _nothing),
    IdentityLink.Relinked.TOPIC: Rule(None, SUCCESS, _nothing),
    IdentityLink.Released.TOPIC: Rule(None, SUCCESS, _nothing),
}

AUDIT_TYPES = tuple(sorted({rule.type for rule in RULES.values() if rule.type is not None}))
