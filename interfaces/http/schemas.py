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
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    display_name: Text = Field(description="1-128 characters")
    issuer: Text = Field(
        description="the name the authenticator app shows; 1-64 characters, no ':'"
    )
    admin: AdminAccount = Field(description="the first user, with the roles admin and auditor")


class EnvironmentView(BaseModel):
    slug: str
    display_name: str
    issuer: str

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
    require_2fa: bool
    groups: list[str]

    @classmethod
    def of(cls, environment: Environment) -> PolicyView:
        return cls(require_2fa=environment.require_2fa, groups=sorted(environment.selected_groups))


# ----- users -----


class CreateUserRequest(RequestBody):
    username: Text = Field(description="1-64 characters, no control characters, no ':'")
    password: Text = Field(description="8-128 characters, not common, not the username")
    groups: list[Group] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=list)


class ChangeGroupsRequest(RequestBody):
    groups: list[Group]


class ChangeRolesRequest(RequestBody):
    roles: list[Role]


class SetPasswordRequest(RequestBody):
    password: Text


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
    issuer: str
    subject: str = Field(description="the provider's sub for this user")


class UserView(BaseModel):
    username: str
    groups: list[str]
    roles: list[str]
    two_factor: TwoFactorView
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
    users: list[UserView]
    next_cursor: str | None


# ----- login -----


class LoginRequest(RequestBody):
    username: Text
    password: Text


class CodeRequest(RequestBody):
    code: Text = Field(description="six ASCII digits from the authenticator app")


class RecoveryCodeRequest(RequestBody):
    recovery_code: Text = Field(
        description="16 hex digits, as xxxx-xxxx-xxxx-xxxx or without dashes, either case"
    )


class LoginStepView(BaseModel):
    status: LoginStatus
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
    status: Literal["authenticated"] = "authenticated"
    access_token: str
    expires_in: int
    recovery_codes: list[str] | None = Field(
        default=None, description="ten codes, shown once, after a registration only"
    )


# ----- self -----


class ChangeOwnPasswordRequest(RequestBody):
    current_password: Text
    new_password: Text


class RecoveryCodesView(BaseModel):
    recovery_codes: list[str]


# ----- audit -----


class AuditEntryView(BaseModel):
    position: int
    occurred_at: Timestamp
    type: str
    username: str | None
    actor: str | None
    outcome: Literal["success", "failure"]
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]

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
    entries: list[AuditEntryView]
    next_cursor: str | None


class UserHistory(BaseModel):
    entries: list[AuditEntryView]


# ----- operations -----


class HealthView(BaseModel):
    status: str


class NotReadyView(BaseModel):
    error: Literal["not_ready"] = "not_ready"
    detail: str
    problems: list[str]
