"""Login: the password step, then a code, a recovery code, or registering an authenticator."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import segno
from fastapi import APIRouter, Response

from application.login import LoginCompleted, Registration
from domain.errors import AeroError
from interfaces.http import examples
from interfaces.http.deps import Env, RegistrationLogin, ServicesDep, TwoFactorLogin
from interfaces.http.observability import Metrics
from interfaces.http.openapi import CODE_STEP, LOGIN_TOKEN, SERVED, answers, request
from interfaces.http.schemas import (
    AuthenticatedView,
    CodeRequest,
    LoginRequest,
    LoginStepView,
    RecoveryCodeRequest,
    RegistrationView,
)
from interfaces.http.services import Services

router = APIRouter(prefix="/v1/environments/{env}/login", tags=["login"])


@contextmanager
def _counted(metrics: Metrics, step: str) -> Iterator[None]:
    try:
        yield
    except AeroError as e:
        metrics.login_step(step, e.code)
        raise


def _authenticated(services: Services, step: str, done: LoginCompleted) -> AuthenticatedView:
    services.metrics.login_step(step, "authenticated")
    issued = services.tokens.issue_access(done.user)
    return AuthenticatedView(
        access_token=issued.token, expires_in=issued.expires_in, recovery_codes=done.recovery_codes
    )


@router.post(
    "",
    response_model_exclude_none=True,
    responses=answers(
        200,
        examples.LOGIN_STEP,
        *SERVED,
        "invalid_credentials",
        "environment_not_found",
        "password_login_disabled",
    ),
    openapi_extra=request(examples.LOGIN),
)
def login(env: Env, body: LoginRequest, services: ServicesDep) -> LoginStepView:
    """The password step. No token.

    `authenticated` with an access token when 2FA is neither required nor
    registered; otherwise a login token (5 minutes, this login only) for
    `two_factor_required` or `two_factor_registration_required`. An unknown
    user, a wrong password and a throttled password step all answer the same
    401 `invalid_credentials`. The right password of a user whom the identity
    provider's `password_login` setting sends to the provider: 403
    `password_login_disabled`.
    """
    with _counted(services.metrics, "password"):
        step = services.application.start_login(env, body.username, body.password)
    services.metrics.login_step("password", step.status)
    if step.challenge_id is None or step.expires_at is None:
        issued = services.tokens.issue_access(step.user)
        return LoginStepView(
            status="authenticated", access_token=issued.token, expires_in=issued.expires_in
        )
    issued = services.tokens.issue_login(
        step.user, step.challenge_id, step.next_step, step.expires_at
    )
    return LoginStepView(
        status=step.status,
        login_token=issued.token,
        expires_in=issued.expires_in,
    )


def _registration(services: Services, env: str, login: RegistrationLogin) -> Registration:
    return services.application.start_registration(env, login.username, login.challenge_id)


@router.post(
    "/two-factor/registration", responses=answers(200, examples.REGISTRATION, *LOGIN_TOKEN)
)
def start_registration(
    env: Env, login: RegistrationLogin, services: ServicesDep
) -> RegistrationView:
    """A new secret for the authenticator app, as text, otpauth URI and QR code.

    Takes the login token of a `two_factor_registration_required` login.
    Calling it again within the same login returns the same secret.
    """
    registration = _registration(services, env, login)
    qr = segno.make(registration.otpauth_uri, error="m", micro=False)
    return RegistrationView(
        secret=registration.secret,
        otpauth_uri=registration.otpauth_uri,
        qr_code_svg=qr.svg_inline(scale=4, title="Scan with your authenticator app"),
    )


@router.get(
    "/two-factor/registration/qr.png",
    response_class=Response,
    responses=answers(
        200,
        None,
        *LOGIN_TOKEN,
        description="a QR code of otpauth_uri",
        content={
            "image/png": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "a PNG image: a QR code that decodes to otpauth_uri",
                }
            }
        },
    ),
)
def registration_qr(env: Env, login: RegistrationLogin, services: ServicesDep) -> Response:
    """The registration's otpauth URI as a PNG QR code (same login token, same secret)."""
    registration = _registration(services, env, login)
    png = io.BytesIO()
    segno.make(registration.otpauth_uri, error="m", micro=False).save(
        png, kind="png", scale=6, border=4
    )
    return Response(png.getvalue(), media_type="image/png")


@router.post(
    "/two-factor/registration/confirm",
    response_model_exclude_none=True,
    responses=answers(200, examples.REGISTERED, *CODE_STEP),
    openapi_extra=request(examples.CODE),
)
def confirm_registration(
    env: Env, body: CodeRequest, login: RegistrationLogin, services: ServicesDep
) -> AuthenticatedView:
    """Confirm the new authenticator with its first code. The login completes with an
    access token and ten recovery codes, shown this once.

    Takes the login token of a `two_factor_registration_required` login that has
    started registration (else 401 `invalid_token`). Wrong codes count as for the code
    step: 401, then 429 while locked, 403 once disabled.
    """
    with _counted(services.metrics, "registration"):
        done = services.application.confirm_registration(
            env, login.username, login.challenge_id, body.code
        )
    return _authenticated(services, "registration", done)


@router.post(
    "/two-factor",
    response_model_exclude_none=True,
    responses=answers(200, examples.AUTHENTICATED, *CODE_STEP),
    openapi_extra=request(examples.CODE),
)
def verify_code(
    env: Env, body: CodeRequest, login: TwoFactorLogin, services: ServicesDep
) -> AuthenticatedView:
    """The code from the authenticator app (login token of a `two_factor_required` login).

    Exactly six ASCII digits, this 30 s step or one either side, each step
    accepted once. Wrong, replayed and malformed codes each count as a
    failure: the fifth in a row still answers 401 and locks the code step
    (429 with Retry-After while locked); after 100 in all the authenticator
    is disabled (403) until an admin reset.
    """
    with _counted(services.metrics, "two_factor"):
        done = services.application.verify_code(env, login.username, login.challenge_id, body.code)
    return _authenticated(services, "two_factor", done)


@router.post(
    "/recovery",
    response_model_exclude_none=True,
    responses=answers(200, examples.AUTHENTICATED, *CODE_STEP),
    openapi_extra=request(examples.RECOVERY_CODE),
)
def use_recovery_code(
    env: Env, body: RecoveryCodeRequest, login: TwoFactorLogin, services: ServicesDep
) -> AuthenticatedView:
    """A recovery code instead of the app's code (login token of a `two_factor_required`
    login); each works once. Failures count with the code step's: 401 `invalid_code`,
    429 `too_many_attempts`, 403 `two_factor_disabled`."""
    with _counted(services.metrics, "recovery"):
        done = services.application.use_recovery_code(
            env, login.username, login.challenge_id, body.recovery_code
        )
    return _authenticated(services, "recovery", done)
