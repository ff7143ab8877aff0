"""Log in: the password, then the code, a recovery code, or registering an authenticator.

The same application commands as the API's login routes; between the steps the
login token rides in a sealed cookie limited to the login pages.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from application.login import LoginCompleted
from domain.credential import REGISTRATION, TWO_FACTOR
from domain.errors import (
    AeroError,
    InvalidChallengeError,
    InvalidCodeError,
    InvalidCredentialsError,
    InvalidInputError,
    PasswordLoginDisabledError,
    TooManyAttemptsError,
    TwoFactorDisabledError,
)
from interfaces.http.errors import status_of
from interfaces.tokens import InvalidTokenError, LoginClaims
from interfaces.web.context import (
    CODES_COOKIE,
    LOGIN_COOKIE,
    RECOVERY_CODES_MINUTES,
    SESSION_COOKIE,
    CsrfChecked,
    LoginRequired,
    PageError,
    Web,
    WebDep,
    base,
    clear_cookie,
    current_session,
    redirect,
    render,
    set_cookie,
    start_session,
)
from interfaces.web.i18n import _
from interfaces.web.login_flow import go_on, login_form, login_path

router = APIRouter()

NOTICES = {
    "expired": _("Your login took too long or was replaced by a newer one. Log in again."),
    "session_ended": _("Your session has ended. Log in again."),
    "logged_out": _("You have logged out."),
    "password_changed": _("Password changed. Log in with your new password."),
}
INVALID_LOGIN = _("Invalid username or password")
PASSWORD_LOGIN_DISABLED = _(
    "Password login is disabled for this account: log in through the identity provider."
)
INVALID_CODE = _("Invalid code")


def _code_error(web: Web, request: Request, error: AeroError) -> str:
    """The alert for a failed code step, as UI.md words it."""
    gettext = web.catalogue.translations(
        web.catalogue.negotiate(request.headers.get("accept-language"))
    ).gettext
    if isinstance(error, TooManyAttemptsError):
        minutes = max(1, -(-error.retry_after // 60))
        return gettext(_("Too many attempts. Wait %(minutes)d minute(s), then try again.")) % {
            "minutes": minutes
        }
    if isinstance(error, TwoFactorDisabledError):
        return gettext(
            _(
                "Two-factor authentication is disabled for your account after too many "
                "failed codes. Ask an administrator to reset it."
            )
        )
    return gettext(INVALID_CODE)


# ----- the password step -----


@router.get("/{env}/login")
def login_page(env: str, request: Request, web: WebDep, notice: str | None = None) -> Response:
    # Shown even with a live session: logging in as someone else replaces it.
    return login_form(web, request, env, notice=NOTICES.get(notice or ""))


@router.post("/{env}/login", dependencies=[CsrfChecked])
def submit_password(
    env: str,
    request: Request,
    web: WebDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    services = web.services
    try:
        step = services.application.start_login(env, username, password)
    except (InvalidCredentialsError, InvalidInputError) as e:
        services.metrics.login_step("password", e.code)
        return login_form(web, request, env, username=username, error=INVALID_LOGIN, status=401)
    except PasswordLoginDisabledError as e:
        # The right password of a user who must log in through the identity provider.
        services.metrics.login_step("password", e.code)
        return login_form(
            web, request, env, username=username, error=PASSWORD_LOGIN_DISABLED, status=403
        )
    return go_on(web, request, env, step, "password")


# ----- the second step -----


def _pending(web: Web, request: Request, env: str, step: str) -> LoginClaims:
    """The unfinished login of this browser, for this step; else back to Log in."""
    data = web.sealer.unseal(LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
    token = data.get("token") if data else None
    if not isinstance(token, str):
        raise LoginRequired(env, "expired")
    try:
        claims = web.services.tokens.verify_login(token)
    except InvalidTokenError:
        raise LoginRequired(env, "expired") from None
    if claims.environment != env or claims.step != step:
        raise LoginRequired(env, "expired")
    return claims


def _completed(web: Web, request: Request, env: str, step: str, done: LoginCompleted) -> Response:
    web.services.metrics.login_step(step, "authenticated")
    issued = web.services.tokens.issue_access(done.user)
    if done.recovery_codes:
        response = redirect(f"{base(request, env)}/recovery-codes")
        _keep_recovery_codes(web, request, response, env, done.recovery_codes)
    else:
        response = redirect(f"{base(request, env)}/")
    start_session(web, request, response, env, issued.token, issued.expires_in)
    clear_cookie(web, request, response, LOGIN_COOKIE, login_path(request, env))
    return response


def _keep_recovery_codes(
    web: Web, request: Request, response: Response, env: str, codes: list[str]
) -> None:
    """Until the user continues (or ten minutes pass), so that the page can be
    reloaded and the codes downloaded; they are never stored on the server."""
    sealed = web.sealer.seal(CODES_COOKIE, {"env": env, "codes": codes})
    set_cookie(
        web,
        request,
        response,
        CODES_COOKIE,
        sealed,
        path=f"{base(request, env)}/recovery-codes",
        max_age=RECOVERY_CODES_MINUTES * 60,
        samesite="strict",
    )


def _failed(web: Web, request: Request, env: str, step: str, error: AeroError) -> None:
    web.services.metrics.login_step(step, error.code)
    if isinstance(error, InvalidChallengeError):
        raise LoginRequired(env, "expired") from None


@router.get("/{env}/login/two-factor")
def code_page(env: str, request: Request, web: WebDep) -> Response:
    _pending(web, request, env, TWO_FACTOR)
    return render(web, request, "two_factor.html", env=env)


_SECOND_STEP_REFUSALS = (
    InvalidCodeError,
    TooManyAttemptsError,
    TwoFactorDisabledError,
    InvalidChallengeError,
)


def _second_step(
    web: Web,
    request: Request,
    env: str,
    step: str,
    template: str,
    attempt: Callable[[LoginClaims], LoginCompleted],
) -> Response:
    """A code or a recovery code for the pending login: the same refusals, the same page."""
    login = _pending(web, request, env, TWO_FACTOR)
    try:
        done = attempt(login)
    except _SECOND_STEP_REFUSALS as e:
        _failed(web, request, env, step, e)
        error = _code_error(web, request, e)
        return render(web, request, template, env=env, error=error, status=status_of(e))
    return _completed(web, request, env, step, done)


@router.post("/{env}/login/two-factor", dependencies=[CsrfChecked])
def submit_code(
    env: str, request: Request, web: WebDep, code: Annotated[str, Form()] = ""
) -> Response:
    application = web.services.application
    return _second_step(
        web,
        request,
        env,
        "two_factor",
        "two_factor.html",
        lambda login: application.verify_code(env, login.username, login.challenge_id, code),
    )


@router.get("/{env}/login/recovery")
def recovery_page(env: str, request: Request, web: WebDep) -> Response:
    _pending(web, request, env, TWO_FACTOR)
    return render(web, request, "recovery.html", env=env)


@router.post("/{env}/login/recovery", dependencies=[CsrfChecked])
def submit_recovery_code(
    env: str, request: Request, web: WebDep, recovery_code: Annotated[str, Form()] = ""
) -> Response:
    application = web.services.application
    return _second_step(
        web,
        request,
        env,
        "recovery",
        "recovery.html",
        lambda login: application.use_recovery_code(
            env, login.username, login.challenge_id, recovery_code
        ),
    )


# ----- registration -----


@router.get("/{env}/login/register")
def registration_page(env: str, request: Request, web: WebDep) -> Response:
    return _registration_form(env, request, web)


def _registration_form(
    env: str, request: Request, web: WebDep, error: str | None = None, status: int = 200
) -> Response:
    login = _pending(web, request, env, REGISTRATION)
    try:
        registration = web.services.application.start_registration(
            env, login.username, login.challenge_id
        )
    except InvalidChallengeError:
        raise LoginRequired(env, "expired") from None
    secret = registration.secret
    blocks = [secret[i : i + 4] for i in range(0, len(secret), 4)]
    environment = web.services.application.environment(env)
    return render(
        web,
        request,
        "register.html",
        env=env,
        secret_blocks=blocks,
        issuer=environment.issuer,
        username=login.username,
        error=error,
        status=status,
    )


@router.get("/{env}/login/register/qr.png")
def registration_qr(env: str, request: Request, web: WebDep) -> Response:
    """The same secret as the page (calling it again within a login returns it)."""
    login = _pending(web, request, env, REGISTRATION)
    try:
        registration = web.services.application.start_registration(
            env, login.username, login.challenge_id
        )
    except InvalidChallengeError:
        raise LoginRequired(env, "expired") from None
    png = io.BytesIO()
    segno.make(registration.otpauth_uri, error="m", micro=False).save(
        png, kind="png", scale=6, border=4
    )
    return Response(png.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/{env}/login/register", dependencies=[CsrfChecked])
def confirm_registration(
    env: str, request: Request, web: WebDep, code: Annotated[str, Form()] = ""
) -> Response:
    login = _pending(web, request, env, REGISTRATION)
    try:
        done = web.services.application.confirm_registration(
            env, login.username, login.challenge_id, code
        )
    except (
        InvalidCodeError,
        TooManyAttemptsError,
        TwoFactorDisabledError,
        InvalidChallengeError,
    ) as e:
        _failed(web, request, env, "registration", e)
        return _registration_form(env, request, web, _code_error(web, request, e), status_of(e))
    return _completed(web, request, env, "registration", done)


# ----- recovery codes, shown once -----


def _codes(web: Web, request: Request, env: str) -> list[str]:
    data = web.sealer.unseal(CODES_COOKIE, request.cookies.get(CODES_COOKIE))
    codes = data.get("codes") if data and data.get("env") == env else None
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise PageError(
            404,
            _("Recovery codes"),
            _("These recovery codes have been shown already. Ask for new ones under Account."),
        )
    return codes


@router.get("/{env}/recovery-codes")
def recovery_codes_page(env: str, request: Request, web: WebDep) -> Response:
    session = current_session(env, request, web)
    return render(
        web,
        request,
        "recovery_codes.html",
        env=env,
        session=session,
        codes=_codes(web, request, env),
    )


@router.get("/{env}/recovery-codes/download")
def download_recovery_codes(env: str, request: Request, web: WebDep) -> Response:
    session = current_session(env, request, web)
    codes = _codes(web, request, env)
    environment = web.services.application.environment(env)
    text = "\n".join(
        [
            f"{environment.issuer} recovery codes for {session.caller.username} "
            f"({environment.display_name})",
            "Each code works once. Keep them somewhere safe, away from your phone.",
            "",
            *codes,
            "",
        ]
    )
    filename = f"recovery-codes-{env}.txt"
    return Response(
        text,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/{env}/recovery-codes", dependencies=[CsrfChecked])
def continue_after_codes(env: str, request: Request, web: WebDep) -> Response:
    current_session(env, request, web)
    response = redirect(f"{base(request, env)}/")
    clear_cookie(web, request, response, CODES_COOKIE, f"{base(request, env)}/recovery-codes")
    return response


# ----- log out -----


@router.post("/{env}/logout", dependencies=[CsrfChecked])
def logout(env: str, request: Request, web: WebDep) -> Response:
    """Ends the session on the server: its row goes, so the cookie alone is worth nothing."""
    data = web.sealer.unseal(SESSION_COOKIE, request.cookies.get(SESSION_COOKIE))
    if data is not None and isinstance(data.get("sid"), str):
        web.sessions.remove(data["sid"])
    response = redirect(f"{login_path(request, env)}", notice="logged_out")
    clear_cookie(web, request, response, SESSION_COOKIE, base(request, env))
    return response
