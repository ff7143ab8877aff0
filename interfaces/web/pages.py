"""Home, Environment settings, Users, User, Audit log, Investigate and Account.

Each page drives the same application commands and read models as the API
route of the same purpose (interfaces/http/routes), with the same role checks;
admin writes answer once the read models include them (``writing_as``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse

from domain.errors import (
    AeroError,
    GroupsManagedByProviderError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidTimestampError,
    PasswordLoginDisabledError,
    TwoFactorNotRegisteredError,
    UserExistsError,
    UserNotFoundError,
    WeakPasswordError,
)
from domain.instants import parse_rfc3339
from domain.rules import has_control_characters
from interfaces.http.schemas import UserView
from interfaces.http.streaming import in_one_thread
from interfaces.web.context import (
    SESSION_COOKIE,
    CsrfChecked,
    PageError,
    Session,
    SessionDep,
    Web,
    WebDep,
    base,
    clear_cookie,
    redirect,
    render,
    require_role,
)
from interfaces.web.i18n import _
from interfaces.web.login import _keep_recovery_codes
from projections.api import AuditQuery, InvalidCursorError, ReadModels
from projections.audit_rules import AUDIT_TYPES
from projections.export import csv_lines, jsonl_lines

router = APIRouter()

PAGE_SIZE = 50


def _page_size(limit: int | None) -> int:
    """``?limit=`` as the API takes it (1-1000), kept in the Next page link."""
    return PAGE_SIZE if limit is None else min(max(limit, 1), 1000)


SHOW = {
    "all": _("All users"),
    "required": _("2FA required"),
    "registered": _("2FA registered"),
    "required_unregistered": _("Required, not registered"),
}


def _read_models(web: Web) -> ReadModels:
    if web.services.read_models is None:
        raise PageError(
            503, _("Unavailable"), _("This server runs without its read models. Try again later.")
        )
    return web.services.read_models


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def _rule_in_words(rule: str | None) -> str | None:
    if rule is None:
        return None
    if rule == "all":
        return _("the environment requires 2FA of every user")
    return _("the environment requires 2FA of the group %(group)s") % {
        "group": rule.removeprefix("group:")
    }


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


# ----- environment settings -----


def _known_groups(web: Web, env: str) -> set[str]:
    read_models = _read_models(web)
    groups: set[str] = set()
    cursor = None
    while True:
        page = read_models.list_users(env, "all", 1000, cursor)
        for row in page.items:
            groups.update(row.groups)
        cursor = page.next_cursor
        if cursor is None:
            return groups


def _settings_page(
    web: Web,
    request: Request,
    env: str,
    session: Session,
    *,
    saved: bool = False,
    error: str | None = None,
    status: int = 200,
) -> Response:
    environment = web.services.application.environment(env)
    selected = set(environment.selected_groups)
    compliance = _read_models(web).compliance(env)
    return render(
        web,
        request,
        "environment.html",
        env=env,
        session=session,
        require_2fa=environment.require_2fa,
        groups=sorted(_known_groups(web, env) | selected),
        selected=selected,
        compliance=compliance,
        saved=saved,
        error=error,
        changed_by=environment.policy_changed_by,
        changed_at=environment.policy_changed_at,
        status=status,
    )


@router.get("/{env}/setup/environment")
def environment_settings(
    env: str, request: Request, web: WebDep, session: SessionDep, saved: str | None = None
) -> Response:
    require_role(session, "admin")
    return _settings_page(web, request, env, session, saved=saved == "1")


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
    groups = sorted({*(group or []), *_groups(other_groups)})
    try:
        with web.services.writing_as(session.caller.username):
            web.services.application.set_policy(env, require_2fa is not None, groups)
    except InvalidInputError as e:
        return _settings_page(web, request, env, session, error=e.detail, status=422)
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
    size = _page_size(limit)
    try:
        page = _read_models(web).list_users(env, show, size, cursor)
    except InvalidCursorError:
        page = _read_models(web).list_users(env, show, size, None)
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
                env, username, password, _groups(groups), role or []
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
        history = list(reversed(_read_models(web).history(env, user.username)))
    return render(
        web,
        request,
        "user.html",
        env=env,
        session=session,
        view=view,
        rule=_rule_in_words(application.requiring_rule(user)),
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
                user = application.change_groups(env, username, _groups(groups))
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


# ----- audit log -----


def _instant(value: str, name: str) -> datetime | None:
    """A ``datetime-local`` value (UTC, as the page says) or RFC 3339 text."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 16:  # 2026-11-28T10:00: a browser leaves out zero seconds
        value += ":00"
    if value[-1] not in "Zz" and "+" not in value[10:] and "-" not in value[10:]:
        value += "Z"
    return parse_rfc3339(value, name)


def _audit_query(
    env: str, username: str, type: str, outcome: str, since: str, until: str
) -> AuditQuery:
    for text in (username, type):
        if has_control_characters(text):
            raise InvalidInputError("filter", "must not contain control characters")
    return AuditQuery(
        environment=env,
        username=username.strip() or None,
        types=(type,) if type else (),
        outcome=outcome if outcome in ("success", "failure") else None,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
    )


def _local(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@router.get("/{env}/audit")
def audit_log(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    type: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
    limit: int | None = None,
) -> Response:
    require_role(session, "auditor")
    size = _page_size(limit)
    paging = {} if limit is None else {"limit": str(size)}
    filters = {
        "username": username,
        "type": type,
        "outcome": outcome,
        "since": since,
        "until": until,
    }
    error = None
    try:
        query = _audit_query(env, username, type, outcome, since, until)
        page = _read_models(web).audit(query, size, cursor)
    except (InvalidInputError, InvalidTimestampError, InvalidCursorError) as e:
        error = e.detail if isinstance(e, AeroError) else str(e)
        query = AuditQuery(environment=env)
        page = _read_models(web).audit(query, size, None)
        filters = {key: "" for key in filters}
    shown = {key: value for key, value in filters.items() if value}
    next_url = (
        f"{base(request, env)}/audit?{urlencode({**shown, **paging, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    export = urlencode(shown)
    return render(
        web,
        request,
        "audit.html",
        env=env,
        session=session,
        entries=page.items,
        filters=filters,
        types=AUDIT_TYPES,
        error=error,
        next_url=next_url,
        export_query=export,
        status=422 if error else 200,
    )


@router.get("/{env}/audit/export.{format}")
def export_audit_log(
    env: str,
    format: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    type: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    require_role(session, "auditor")
    if format not in ("csv", "jsonl"):
        raise PageError(404, _("Not found"), _("There is no such export."))
    try:
        query = _audit_query(env, username, type, outcome, since, until)
    except (InvalidInputError, InvalidTimestampError) as e:
        raise PageError(422, _("Invalid filter"), e.detail) from None
    read_models = _read_models(web)
    lines = csv_lines if format == "csv" else jsonl_lines

    def produce() -> Iterator[bytes]:
        return (line.encode() for line in lines(read_models.export_audit(query)))

    return StreamingResponse(
        in_one_thread(produce),
        media_type="text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{env}.{format}"'},
    )


# ----- investigate -----


@router.get("/{env}/investigate")
def investigate(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    username: str = "",
    at: str = "",
) -> Response:
    require_role(session, "auditor")
    policy = requirement = error = None
    if at.strip():
        history = web.services.history
        try:
            instant = _instant(at, "at")
            assert instant is not None
            policy = history.policy_at(env, instant)
            if username.strip():
                requirement = history.required_at(env, username.strip(), instant)
        except (InvalidTimestampError, InvalidInputError, UserNotFoundError) as e:
            error = e.detail
        except AeroError as e:
            error = e.detail
    elif username.strip():
        error = _("Give the instant to look at.")
    return render(
        web,
        request,
        "investigate.html",
        env=env,
        session=session,
        username=username,
        at=at,
        policy=policy,
        requirement=requirement,
        rule=_rule_in_words(requirement.rule) if requirement else None,
        error=error,
        status=422 if error else 200,
    )


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
