"""Domain errors. Each carries the error code of shared/API.md."""

from __future__ import annotations

from datetime import datetime


class AeroError(Exception):
    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInputError(AeroError):
    """A value a command was given does not satisfy the rules."""

    code = "invalid_input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class InvalidTimestampError(AeroError):
    code = "invalid_timestamp"


class EnvironmentNotFoundError(AeroError):
    code = "environment_not_found"


class EnvironmentExistsError(AeroError):
    code = "environment_exists"


class UserNotFoundError(AeroError):
    code = "user_not_found"


class UserExistsError(AeroError):
    code = "user_exists"


class WeakPasswordError(AeroError):
    code = "weak_password"


class InvalidCredentialsError(AeroError):
    """Unknown user, wrong password, or a throttled password step: one error."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("username or password is incorrect")


class InvalidChallengeError(AeroError):
    """The login challenge is unknown, expired, used, superseded or for another step."""

    code = "invalid_token"


class InvalidCodeError(AeroError):
    code = "invalid_code"


class TooManyAttemptsError(AeroError):
    code = "too_many_attempts"

    def __init__(self, locked_until: datetime, now: datetime) -> None:
        super().__init__(f"the code step is locked until {locked_until.isoformat()}")
        self.locked_until = locked_until
        self.retry_after = max(1, int((locked_until - now).total_seconds() + 0.999))


class TwoFactorDisabledError(AeroError):
    code = "two_factor_disabled"

    def __init__(self) -> None:
        super().__init__(
            "the authenticator is disabled after too many failed codes; "
            "an administrator must reset two-factor authentication"
        )


class TwoFactorNotRegisteredError(AeroError):
    code = "two_factor_not_registered"


class ConflictError(AeroError):
    """Other writers kept changing the same record while a command retried; the
    client may send the request again after ``retry_after`` seconds."""

    code = "conflict"

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("the record was changed concurrently too often; try again")
        self.retry_after = retry_after
# ----- the identity provider (OpenID Connect) -----


class IdentityProviderNotFoundError(AeroError):
    code = "identity_provider_not_found"


class InvalidIdentityProviderError(AeroError):
    """The issuer is not one to connect: its discovery document is missing or wrong."""

    code = "invalid_identity_provider"


class IdentityProviderUnavailableError(AeroError):
    """No answer within the time-out, a refused connection, a TLS failure or a 5xx."""

    code = "identity_provider_unavailable"


class InvalidRedirectUriError(AeroError):
    code = "invalid_redirect_uri"


class InvalidOidcResponseError(AeroError):
    """A callback refused: a state unknown, used or expired, a refused code or a bad ID token."""

    code = "invalid_oidc_response"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class UserNotProvisionedError(AeroError):
    code = "user_not_provisioned"


class PasswordLoginDisabledError(AeroError):
    code = "password_login_disabled"


class GroupsManagedByProviderError(AeroError):
    code = "groups_managed_by_provider"


class IdentityInUseError(AeroError):
    code = "identity_in_use"
