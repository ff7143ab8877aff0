"""Environment settings (its policy form), Users, New user and User: the admin's pages.

Each page drives the same application commands and read models as the API
route of the same purpose (interfaces/http/routes), with the same role checks;
admin writes answer once the read models include them (``writing_as``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from domain.errors import (
    GroupsManagedByProviderError,
    InvalidInputError,
    UserExistsError,
    UserNotFoundError,
    WeakPasswordError,
)
from interfaces.http.schemas import UserView
from interfaces.web.context import (
    CsrfChecked,
    PageError,
    Session,
    SessionDep,
    Web,
    WebDep,
    base,
    redirect,
    render,
    require_role,
)
from interfaces.web.environment_page import PROVIDER_NOTICES, settings_page
from interfaces.web.i18n import _
from interfaces.web.page_helpers import SHOW, group_list, page_size, queries, rule_in_words
from projections.api import InvalidCursorError

router = APIRouter()


# ----- environment settings -----


@router.get("/{env}/setup/environment")
def environment_settings(
    env: str, request: Request, web: WebDep, session: SessionDep, saved: str | None = None
) -> Response:
    require_role(session, "admin")
    return settings_page(
        web,
        request,
        env,
        session,
        saved=saved == "1",
        provider_notice=PROVIDER_NOTICES.get(saved or ""),
    )


@router.post("/{env}/setup/environment", dependencies=[CsrfChecked])
def save_environment_settings(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    require_2fa: Annotated[str | None, Form()] = None,
    group: Annotated[list[str] | None, Form()] = None,
    other_groups: Annotated[str, Form()] = "",
) -> Response:
    require_role(session, "admin")
    groups = sorted({*(group or []), *group_list(other_groups)})
    try:
        with web.services.writing_as(session.caller.username):
            web.services.application.set_policy(env, require_2fa is not None, groups)
    except InvalidInputError as e:
        return settings_page(web, request, env, session, error=e.detail, status=422)
    return redirect(f"{base(request, env)}/setup/environment", saved="1")


# ----- users -----


@router.get("/{env}/users")
def users(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    show: str = "all",
    cursor: str | None = None,
    limit: int | None = None,
) -> Response:
    require_role(session, "admin")
    if show not in SHOW:
        show = "all"
    size = page_size(limit)
    try:
        page = queries(web).list_users(env, show, size, cursor)
    except InvalidCursorError:
        page = queries(web).list_users(env, show, size, None)
    paging = {} if limit is None else {"limit": str(size)}
    now = web.services.clock.now()
    rows = [UserView.of_row(row, now) for row in page.items]
    next_url = (
        f"{base(request, env)}/users?"
        f"{urlencode({'show': show, **paging, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    return render(
        web,
        request,
        "users.html",
        env=env,
        session=session,
        rows=rows,
        show=show,
        options=SHOW,
        next_url=next_url,
    )


@router.get("/{env}/setup/new-user")
def new_user_page(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    require_role(session, "admin")
    return render(web, request, "new_user.html", env=env, session=session, form={})


@router.post("/{env}/setup/new-user", dependencies=[CsrfChecked])
def create_user(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    groups: Annotated[str, Form()] = "",
    role: Annotated[list[str] | None, Form()] = None,
) -> Response:
    require_role(session, "admin")
    try:
        with web.services.writing_as(session.caller.username):
            user = web.services.application.create_user(
                env, username, password, group_list(groups), role or []
            )
    except (UserExistsError, WeakPasswordError, InvalidInputError) as e:
        form = {"username": username, "groups": groups, "roles": role or []}
        message = (
            _("A user with this name exists already.")
            if isinstance(e, UserExistsError)
            else e.detail
        )
        return render(
            web,
            request,
            "new_user.html",
            env=env,
            session=session,
            form=form,
            error=message,
            status=409 if isinstance(e, UserExistsError) else 422,
        )
    return redirect(f"{base(request, env)}/users/{_quote(user.username)}", saved="created")


def _quote(username: str) -> str:
    from urllib.parse import quote

    return quote(username, safe="")


def _user_page(
    web: Web,
    request: Request,
    env: str,
    session: Session,
    username: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    application = web.services.application
    try:
        user = application.user(env, username)
    except UserNotFoundError:
        raise PageError(404, _("Not found"), _("There is no such user.")) from None
    now = web.services.clock.now()
    view = UserView.of(user, application.environment(env), now)
    history = None
    if session.caller.has_any("auditor"):
        history = list(reversed(queries(web).history(env, user.username)))
    return render(
        web,
        request,
        "user.html",
        env=env,
        session=session,
        view=view,
        rule=rule_in_words(application.requiring_rule(user)),
        disabled=user.disabled,
        history=history,
        notice=notice,
        error=error,
        status=status,
    )


USER_NOTICES = {
    "created": _("User created."),
    "saved": _("Saved"),
    "reset": _("Two-factor authentication was reset. The user registers again at the next login."),
}


@router.get("/{env}/users/{username:path}")
def user_page(
    env: str,
    username: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    saved: str | None = None,
) -> Response:
    require_role(session, "admin")
    return _user_page(web, request, env, session, username, notice=USER_NOTICES.get(saved or ""))


@router.post("/{env}/users/{username:path}", dependencies=[CsrfChecked])
def change_user(
    env: str,
    username: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    action: Annotated[str, Form()] = "",
    groups: Annotated[str, Form()] = "",
    role: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """One address for the user's forms (usernames may hold a slash): ``action`` says which."""
    require_role(session, "admin")
    application = web.services.application
    try:
        with web.services.writing_as(session.caller.username):
            if action == "reset":
                user = application.reset_two_factor(env, username, reason)
                outcome = "reset"
            elif action == "save":
                user = application.change_groups(env, username, group_list(groups))
                user = application.change_roles(env, username, role or [])
                outcome = "saved"
            else:
                raise PageError(400, _("Bad request"), _("This form is not known."))
    except UserNotFoundError:
        raise PageError(404, _("Not found"), _("There is no such user.")) from None
    except InvalidInputError as e:
        return _user_page(web, request, env, session, username, error=e.detail, status=422)
    except GroupsManagedByProviderError as e:
        return _user_page(web, request, env, session, username, error=e.detail, status=409)
    return redirect(f"{base(request, env)}/users/{_quote(user.username)}", saved=outcome)
