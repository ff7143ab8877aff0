"""Request and response bodies, named by purpose.

Request bodies forbid unknown fields (API.md: 422) and are strict: ``"true"``
is not a boolean and ``5`` is not a string. The domain stays the one place
that decides names, groups and passwords; the constraints here are the ones
that hold exactly as the domain states them, so OpenAPI can show them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from application.login import LoginStatus
from domain.credential import UserCredential
from domain.environment import Environment
from domain.instants import rfc3339
from projections.api import AuditEntry, UserRow


def _unicode_text(value: str) -> str:
    # JSON may spell a lone surrogate ("\ud800"); it is no text and cannot be stored.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]
Group = Annotated[Text, Field(min_length=1, max_length=64)]
Role = Literal["admin", "auditor"]
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ----- environments -----


class AdminAccount(RequestBody):
    username: Text = Field(description="1-64 characters, no control characters, no ':'")
    password: Text = Field(description="8-128 characters, not common, not the username")


class CreateEnvironmentRequest(RequestBody):
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = Field(
        description="the environment's name in paths (`/v1/environments/{env}`); never changes"
    )
    display_name: Text = Field(description="the name people read; 1-128 characters")
    issuer: Text = Field(
        description="the name the authenticator app shows; 1-64 characters, no ':'"
    )
    admin: AdminAccount = Field(description="the first user, with the roles admin and auditor")


class EnvironmentView(BaseModel):
    slug: str = Field(description="the environment's name in paths")
    display_name: str = Field(description="the name people read")
    issuer: str = Field(description="the name the authenticator app shows")

    @classmethod
    def of(cls, environment: Environment) -> EnvironmentView:
        return cls(
            slug=environment.slug,
            display_name=environment.display_name,
            issuer=environment.issuer,
        )


# ----- policy -----


class SetPolicyRequest(RequestBody):
    require_2fa: bool = Field(description='the "Require 2FA" checkbox')
    groups: list[Group] = Field(
        default_factory=list,
        description='"Require 2FA for groups": empty means every user when require_2fa is set',
    )


class PolicyView(BaseModel):
    require_2fa: bool = Field(description='the "Require 2FA" checkbox')
    groups: list[str] = Field(
        description='"Require 2FA for groups", sorted: empty means every user when '
        "require_2fa is set"
    )

    @classmethod
    def of(cls, environment: Environment) -> PolicyView:
        return cls(require_2fa=environment.require_2fa, groups=sorted(environment.selected_groups))


# ----- users -----


class CreateUserRequest(RequestBody):
    username: Text = Field(description="1-64 characters, no control characters, no ':'")
    password: Text = Field(description="8-128 characters, not common, not the username")
    groups: list[Group] = Field(
        default_factory=list,
        description="groups of 1-64 characters each, case-sensitive; they decide whether the "
        "policy requires 2FA",
    )
    roles: list[Role] = Field(
        default_factory=list,
        description="admin (manages users and the policy), auditor (reads the audit log)",
    )


class ChangeGroupsRequest(RequestBody):
    groups: list[Group] = Field(
        description="the user's groups from now on (1-64 characters each, case-sensitive)"
    )


class ChangeRolesRequest(RequestBody):
    roles: list[Role] = Field(description="the user's roles from now on: admin, auditor")


class SetPasswordRequest(RequestBody):
    password: Text = Field(description="8-128 characters, not common, not the username")


class ResetTwoFactorRequest(RequestBody):
    reason: Text = Field(description="1-500 characters, kept in the audit log")


class TwoFactorView(BaseModel):
    required: bool = Field(description="the policy requires 2FA of this user")
    registered: bool = Field(description="the user has a confirmed authenticator")
    locked_until: Timestamp | None = Field(
        description="the code step is locked until then after repeated failures"
    )
    disabled: bool = Field(
        default=False,
        description="the authenticator is disabled after too many failures, until an admin reset",
    )


class IdentityView(BaseModel):
    issuer: str = Field(description="the identity provider's issuer")
    subject: str = Field(description="the provider's sub for this user")


class UserView(BaseModel):
    username: str = Field(description="as created (compared case-insensitively)")
    groups: list[str] = Field(description="sorted, without duplicates")
    roles: list[str] = Field(description="a subset of admin and auditor, sorted")
    two_factor: TwoFactorView = Field(description="the user's two-factor state")
    identity: IdentityView | None = Field(
        default=None,
        description="the identity provider's (issuer, subject) this user is linked to, "
        "null when unlinked; left out of the users list",
    )

    @classmethod
    def of(cls, user: UserCredential, environment: Environment, now: datetime) -> UserView:
        """The user as at ``now``, judged by the policy of ``environment`` (of the same instant)."""
        return cls(
            username=user.username,
            groups=sorted(user.groups),
            roles=sorted(user.roles),
            two_factor=TwoFactorView(
                required=environment.requiring_rule(user.groups) is not None,
                registered=user.registered,
                locked_until=user.code_step_locked_until(now),
                disabled=user.disabled,
            ),
            identity=None
            if user.identity_issuer is None or user.identity_subject is None
            else IdentityView(issuer=user.identity_issuer, subject=user.identity_subject),
        )

    @classmethod
    def of_row(cls, row: UserRow, now: datetime) -> UserView:
        locked = (
            row.locked_until if row.locked_until is not None and now < row.locked_until else None
        )
        return cls(
            username=row.username,
            groups=sorted(row.groups),
            roles=sorted(row.roles),
            two_factor=TwoFactorView(
                required=row.required,
                registered=row.registered,
                locked_until=locked,
                disabled=row.disabled,
            ),
        )


class UserList(BaseModel):
    users: list[UserView] = Field(description="this page's users, ordered by username")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


# ----- login -----


class LoginRequest(RequestBody):
    username: Text = Field(description="compared case-insensitively")
    password: Text = Field(description="the user's password")


class CodeRequest(RequestBody):
    code: Text = Field(description="six ASCII digits from the authenticator app")


class RecoveryCodeRequest(RequestBody):
    recovery_code: Text = Field(
        description="16 hex digits, as xxxx-xxxx-xxxx-xxxx or without dashes, either case"
    )


class LoginStepView(BaseModel):
    status: LoginStatus = Field(
        description="authenticated: done; two_factor_required: send a code next; "
        "two_factor_registration_required: register an authenticator next"
    )
    access_token: str | None = Field(default=None, description="when status is authenticated")
    login_token: str | None = Field(
        default=None, description="for the second step, when status is not authenticated"
    )
    expires_in: int = Field(description="seconds until the token expires")


class RegistrationView(BaseModel):
    secret: str = Field(description="Base32, no padding; 160 bits")
    otpauth_uri: str = Field(description="Key Uri Format: otpauth://totp/ISSUER:USERNAME?...")
    qr_code_svg: str = Field(description="an inline SVG QR code of otpauth_uri")


class AuthenticatedView(BaseModel):
    status: Literal["authenticated"] = Field(
        default="authenticated", description="the login is complete"
    )
    access_token: str = Field(description="the access token (a JWT) for the other endpoints")
    expires_in: int = Field(description="seconds until the access token expires")
    recovery_codes: list[str] | None = Field(
        default=None, description="ten codes, shown once, after a registration only"
    )


# ----- self -----


class ChangeOwnPasswordRequest(RequestBody):
    current_password: Text = Field(description="the password now, as proof")
    new_password: Text = Field(description="8-128 characters, not common, not the username")


class RecoveryCodesView(BaseModel):
    recovery_codes: list[str] = Field(
        description="ten codes of 16 hex digits (xxxx-xxxx-xxxx-xxxx), shown once"
    )


# ----- audit -----


class AuditEntryView(BaseModel):
    position: int = Field(description="the event's position in the store; orders the log")
    occurred_at: Timestamp = Field(description="when it happened (RFC 3339, UTC)")
    type: str = Field(description="what happened, e.g. two_factor_failed")
    username: str | None = Field(description="the user it happened to; null for the environment")
    actor: str | None = Field(
        description="who caused it: the admin for a reset, the user for a login, operator, "
        "identity-provider"
    )
    outcome: Literal["success", "failure"] = Field(description="success or failure")
    ip: str | None = Field(description="the client's IP address, when a request caused it")
    user_agent: str | None = Field(description="the client's User-Agent, when it sent one")
    details: dict[str, Any] = Field(
        description="what the type records (never a password, code, secret or token)"
    )

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        return cls(
            position=entry.position,
            occurred_at=entry.occurred_at,
            type=entry.type,
            username=entry.username,
            actor=entry.actor,
            outcome=entry.outcome,  # type: ignore[arg-type]
            ip=entry.ip,
            user_agent=entry.user_agent,
            details=entry.details,
        )


class AuditPage(BaseModel):
    entries: list[AuditEntryView] = Field(description="this page's entries, oldest first")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class UserHistory(BaseModel):
    entries: list[AuditEntryView] = Field(description="the user's entries, oldest first")


# ----- operations -----


class HealthView(BaseModel):
    status: str = Field(description='"ok" (/healthz) or "ready" (/readyz)')


class NotReadyView(BaseModel):
    error: Literal["not_ready"] = Field(
        default="not_ready",
        description="what went wrong, for programs: not_ready",
        json_schema_extra={"enum": ["not_ready"]},
    )
    detail: str = Field(description="the problems, in one sentence")
    problems: list[str] = Field(description="each reason the service is not ready")


class JsonWebKey(BaseModel):
    """An Ed25519 public key (RFC 8037)."""

    kty: str = Field(description='"OKP"')
    crv: str = Field(description='"Ed25519"')
    x: str = Field(description="the public key, base64url")
    kid: str = Field(description="the key's id: its RFC 7638 thumbprint, in tokens' headers")
    alg: str = Field(description='"EdDSA"')
    use: str = Field(description='"sig"')


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey] = Field(
        description="the current signing key, then the previous one while its tokens may live"
    )
