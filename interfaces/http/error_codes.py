"""Every error code the HTTP API answers, with its status: the one table that both the
error handlers and the OpenAPI document read.

A domain error's code is its class's ``code``; the HTTP layer's own codes (tokens,
roles, the store, the request itself) are named here too. ``status_of`` picks an
answer's status from this table, and each route's documented error responses group
the codes it lists by the status found here, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import (
    ConflictError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    GroupsManagedByProviderError,
    IdentityInUseError,
    IdentityProviderNotFoundError,
    IdentityProviderUnavailableError,
    InvalidCodeError,
    InvalidCredentialsError,
    InvalidIdentityProviderError,
    InvalidInputError,
    InvalidOidcResponseError,
    InvalidRedirectUriError,
    InvalidTimestampError,
    PasswordLoginDisabledError,
    TooManyAttemptsError,
    TwoFactorDisabledError,
    TwoFactorNotRegisteredError,
    UserExistsError,
    UserNotFoundError,
    UserNotProvisionedError,
    WeakPasswordError,
)

# Response headers that some codes carry, with what they say.
RETRY_AFTER = "Retry-After"
WWW_AUTHENTICATE = "WWW-Authenticate"
HEADERS: dict[str, str] = {
    RETRY_AFTER: "seconds to wait before sending the request again",
    WWW_AUTHENTICATE: 'the challenge (RFC 9110 §11.6.1): `Bearer realm="aero-auth"`, with '
    '`error="invalid_token"` for a token refused; `Basic realm="aero-auth"` for a '
    "service credential refused",
}


@dataclass(frozen=True)
class ErrorCode:
    """One code: its status, when it is answered, and a ``detail`` as the service writes it."""

    status: int
    when: str
    detail: str
    headers: tuple[str, ...] = ()


_401 = (WWW_AUTHENTICATE,)

CODES: dict[str, ErrorCode] = {
    # ----- the request itself -----
    "invalid_request": ErrorCode(
        422,
        "the body or query does not fit the schema (unknown field or parameter, wrong type, "
        "missing field, pattern, range), or is not UTF-8 JSON; `detail` lists the problems",
        "the body is not UTF-8 JSON",
    ),
    InvalidInputError.code: ErrorCode(
        422,
        "a value fits the schema but not a domain rule; `detail` starts with the field",
        "username: must not contain ':'",
    ),
    "payload_too_large": ErrorCode(
        413, "the body is over the service's limit", "request bodies are limited to 65536 bytes"
    ),
    "unsupported_media_type": ErrorCode(
        415,
        "a body of a content type the endpoint does not read",
        "send application/x-www-form-urlencoded (RFC 7662) or application/json",
    ),
    "not_found": ErrorCode(404, "no such path", "Not Found"),
    "method_not_allowed": ErrorCode(
        405, "a path that exists, with another method", "Method Not Allowed"
    ),
    # ----- tokens, roles and credentials -----
    "invalid_token": ErrorCode(
        401,
        "no token, the wrong kind of token, or one that is expired, forged, reused, "
        "superseded or for another environment",
        "the token has expired",
        _401,
    ),
    "forbidden": ErrorCode(
        403, "a valid access token whose user lacks the role", "this needs the role admin"
    ),
    "invalid_client": ErrorCode(
        401,
        "the service credential (HTTP Basic) is missing, unknown, revoked or wrong",
        "the service credential is missing, unknown, revoked or wrong",
        _401,
    ),
    InvalidCredentialsError.code: ErrorCode(
        401,
        "an unknown user, a wrong password or a throttled password step, all with the same body",
        "username or password is incorrect",
        _401,
    ),
    InvalidCodeError.code: ErrorCode(
        401,
        "a TOTP code or recovery code that is wrong, already used or malformed",
        "the code is not valid",
        _401,
    ),
    TooManyAttemptsError.code: ErrorCode(
        429,
        "the user's code step is locked after repeated failures",
        "the code step is locked until 2026-11-28T10:05:00+00:00",
        (RETRY_AFTER,),
    ),
    TwoFactorDisabledError.code: ErrorCode(
        403,
        "the authenticator had too many failures in all; until an admin reset",
        TwoFactorDisabledError().detail,
    ),
    # ----- what the request names -----
    EnvironmentNotFoundError.code: ErrorCode(
        404,
        "no such environment (with `at`: not yet at that instant)",
        "no environment 'acme'",
    ),
    UserNotFoundError.code: ErrorCode(
        404,
        "no such user (with `at`: not yet at that instant)",
        "no user 'bob' in environment 'acme'",
    ),
    EnvironmentExistsError.code: ErrorCode(
        409, "an environment with that slug exists", "environment 'acme' exists"
    ),
    UserExistsError.code: ErrorCode(
        409,
        "a user with that name (compared case-insensitively) exists",
        "user 'bob' exists in 'acme'",
    ),
    WeakPasswordError.code: ErrorCode(
        422,
        "too short or too long, one of the most common passwords, or holding the username; "
        "`detail` says which",
        "password is one of the most commonly used passwords",
    ),
    InvalidTimestampError.code: ErrorCode(
        422,
        "`at`, `since` or `until` is not RFC 3339, or `at` lies in the future",
        "at 2027-01-01T00:00:00Z is in the future (now 2026-11-28T10:00:00Z)",
    ),
    "invalid_cursor": ErrorCode(
        422, "a cursor this service did not issue", "the cursor is not one this service issued"
    ),
    TwoFactorNotRegisteredError.code: ErrorCode(
        409,
        "recovery codes back up an authenticator, and the user has none",
        "register an authenticator before asking for recovery codes",
    ),
    ConflictError.code: ErrorCode(
        409,
        "other writers kept changing the same record while the command retried",
        ConflictError().detail,
        (RETRY_AFTER,),
    ),
    # ----- the identity provider (OpenID Connect) -----
    IdentityProviderNotFoundError.code: ErrorCode(
        404,
        "the environment has no identity provider",
        "environment 'acme' has no identity provider",
    ),
    InvalidIdentityProviderError.code: ErrorCode(
        422,
        "the issuer's discovery document is missing, not JSON, or names another issuer",
        "the discovery document has no jwks_uri",
    ),
    InvalidRedirectUriError.code: ErrorCode(
        422,
        "`redirect_uri` is not one of the provider's `redirect_uris`",
        "redirect_uri is not one of the provider's redirect_uris",
    ),
    IdentityProviderUnavailableError.code: ErrorCode(
        502,
        "the provider did not answer within 5 s, refused the connection, failed TLS or "
        "answered a 5xx",
        "the identity provider did not answer within 5 s",
    ),
    InvalidOidcResponseError.code: ErrorCode(
        401,
        "a state unknown, used or expired; a code the provider refuses; an ID token failing "
        "a check; or the provider's own refusal",
        "the state is unknown, used or expired",
        _401,
    ),
    UserNotProvisionedError.code: ErrorCode(
        403,
        "no user is linked to the provider's subject, and provisioning cannot create one",
        "no user is linked to this identity; ask an admin",
    ),
    PasswordLoginDisabledError.code: ErrorCode(
        403,
        "the right password of a user whom `password_login` sends to the identity provider",
        "this environment's users log in through its identity provider",
    ),
    GroupsManagedByProviderError.code: ErrorCode(
        409,
        "the provider's `groups_claim` sets the groups at every login",
        "the identity provider sets the groups at every login (groups_claim)",
    ),
    IdentityInUseError.code: ErrorCode(
        409, "another user is linked to that subject", "another user is linked to that subject"
    ),
    # ----- the service -----
    "internal_error": ErrorCode(
        500,
        "anything unexpected; the service's log has the details, the answer none",
        "the server failed to handle the request",
    ),
    "starting": ErrorCode(503, "the process is still starting", "the service is starting"),
    "read_models_unavailable": ErrorCode(
        503,
        "an endpoint that reads the views, on a process that runs without them",
        "this process runs without read models; try again later",
    ),
    "store_unavailable": ErrorCode(
        503,
        "the database cannot serve the request (connection lost, disk full, locked, no free "
        "pooled connection)",
        "the event store is unavailable; try again shortly",
        (RETRY_AFTER,),
    ),
    "not_ready": ErrorCode(
        503,
        "`/readyz`: the store or the views are not ready; `problems` names each reason",
        "read models are catching up",
    ),
}


def status_of_code(code: str) -> int:
    """The status a code is answered with; 400 for a code this table does not know."""
    known = CODES.get(code)
    return 400 if known is None else known.status
