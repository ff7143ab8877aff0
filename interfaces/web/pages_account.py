"""Home and Account: the pages every logged-in user has."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from domain.errors import (
    InvalidCredentialsError,
    InvalidInputError,
    PasswordLoginDisabledError,
    TwoFactorNotRegisteredError,
    WeakPasswordError,
)
from interfaces.http.schemas import UserView
from interfaces.web.context import (
    SESSION_COOKIE,
    CsrfChecked,
    Session,
    SessionDep,
    Web,
    WebDep,
    base,
    clear_cookie,
    redirect,
    render,
)
from interfaces.web.i18n import _
from interfaces.web.login import _keep_recovery_codes

router = APIRouter()


# ----- home -----


@router.get("/{env}/")
def home(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    environment = web.services.application.environment(env)
    return render(
        web,
        request,
        "home.html",
        env=env,
        session=session,
        display_name=environment.display_name,
        registered=session.caller.user.registered,
    )


@router.get("/{env}")
def home_without_slash(env: str, request: Request) -> Response:
    return redirect(f"{base(request, env)}/")


# ----- account -----


def _account_page(
    web: Web,
    request: Request,
    env: str,
    session: Session,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        web,
        request,
        "account.html",
        env=env,
        session=session,
        registered=session.caller.user.registered,
        view=UserView.of(
            session.caller.user, web.services.application.environment(env), web.services.clock.now()
        ),
        error=error,
        status=status,
    )


@router.get("/{env}/account")
def account(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    return _account_page(web, request, env, session)


@router.post("/{env}/account/password", dependencies=[CsrfChecked])
def change_password(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    """Ends every session of the user, this one included (the application says so)."""
    username = session.caller.username
    try:
        with web.services.writing_as(username):
            web.services.application.change_own_password(
                env, username, current_password, new_password
            )
    except InvalidCredentialsError:
        return _account_page(
            web, request, env, session, error=_("The current password is not right."), status=401
        )
    except (WeakPasswordError, InvalidInputError) as e:
        return _account_page(web, request, env, session, error=e.detail, status=422)
    except PasswordLoginDisabledError as e:
        return _account_page(web, request, env, session, error=e.detail, status=403)
    web.sessions.remove(session.id)
    response = redirect(f"{base(request, env)}/login", notice="password_changed")
    clear_cookie(web, request, response, SESSION_COOKIE, base(request, env))
    return response


@router.post("/{env}/account/recovery-codes", dependencies=[CsrfChecked])
def new_recovery_codes(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    username = session.caller.username
    try:
        with web.services.writing_as(username):
            codes = web.services.application.regenerate_recovery_codes(env, username)
    except TwoFactorNotRegisteredError as e:
        return _account_page(web, request, env, session, error=e.detail, status=409)
    response = redirect(f"{base(request, env)}/recovery-codes")
    _keep_recovery_codes(web, request, response, env, codes)
    return response
