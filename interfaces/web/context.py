"""What every page needs: the services, cookies, the caller, CSRF and rendering."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape

from interfaces.http.deps import Caller, current_caller
from interfaces.http.errors import ApiError
from interfaces.http.services import Services
from interfaces.web.i18n import Catalogue
from interfaces.web.sessions import Sealer, SessionList

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

SESSION_COOKIE = "aero_session"
LOGIN_COOKIE = "aero_login"
CODES_COOKIE = "aero_recovery_codes"
CSRF_COOKIE = "aero_csrf"
CSRF_FIELD = "csrf_token"
RECOVERY_CODES_MINUTES = 10


class LoginRequired(Exception):
    def __init__(self, env: str, notice: str | None = None) -> None:
        self.env = env
        self.notice = notice


class PageError(Exception):
    """A page that answers with an error page: 403, 404, 503."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class CsrfRefused(Exception):
    pass


@dataclass
class Web:
    """One process's web UI state, built on the first request once the services run."""

    services: Services
    sealer: Sealer
    sessions: SessionList
    catalogue: Catalogue
    templates: Environment

    def close(self) -> None:
        self.sessions.close()


def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["path"] = lambda value: quote(str(value), safe="")
    environment.filters["instant"] = _instant
    return environment


def _instant(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class WebHolder:
    """Builds ``Web`` lazily: the services exist only once the app has started."""

    services: Callable[[], Services | None]
    _web: Web | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Web:
        if self._web is not None:
            return self._web
        services = self.services()
        if services is None:
            raise PageError(503, "Starting", "The service is starting. Try again in a moment.")
        with self._lock:
            if self._web is None:
                self._web = Web(
                    services=services,
                    sealer=services.container.web_sealer,
                    sessions=services.container.open_web_sessions(),
                    catalogue=Catalogue(),
                    templates=_templates(),
                )
            return self._web

    def close(self) -> None:
        with self._lock:
            if self._web is not None:
                self._web.close()
                self._web = None


def get_web(request: Request) -> Web:
    holder: WebHolder = request.app.state.web
    return holder.get()


WebDep = Annotated[Web, Depends(get_web)]


# ----- transport -----


def content_security_policy(form_targets: tuple[str, ...] = ()) -> str:
    """No inline script or style anywhere, nothing from another origin. A page may
    let its forms lead to other origins (``form-action``): browsers check that
    directive on every redirect a form submission follows, and the Log in page's
    "Log in with ..." form is redirected to the identity provider."""
    form_action = " ".join(("'self'", *form_targets))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"font-src 'self'; connect-src 'self'; form-action {form_action}; base-uri 'none'; "
        "object-src 'none'; frame-ancestors 'none'"
    )


def is_https(web: Web, request: Request) -> bool:
    """Directly over TLS, or via a trusted proxy that says so (X-Forwarded-Proto)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    if peer is None or not web.services.proxies.trusts(peer):
        return False
    forwarded = request.headers.get("x-forwarded-proto", "")
    # The proxy nearest to us appends last.
    return forwarded.rsplit(",", 1)[-1].strip().lower() == "https"


def base(request: Request, env: str) -> str:
    return f"{request.scope.get('root_path', '')}/{env}"


def set_cookie(
    web: Web,
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int | None,
    samesite: str = "lax",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        secure=is_https(web, request),
        samesite=samesite,  # type: ignore[arg-type]
    )


def clear_cookie(web: Web, request: Request, response: Response, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, secure=is_https(web, request))


def redirect(url: str, **query: str) -> RedirectResponse:
    if query:
        url = f"{url}?{urlencode(query)}"
    return RedirectResponse(url, status_code=303)


# ----- CSRF -----


def csrf_seed(request: Request) -> str:
    """The seed cookie's value, or a fresh one that ``render`` will set."""
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed or len(seed) > 64:
        seed = getattr(request.state, "new_csrf_seed", None) or secrets.token_urlsafe(32)
        request.state.new_csrf_seed = seed
    return seed


async def csrf_protect(request: Request) -> None:
    """Every state-changing form: a token matching the seed cookie, or 403 and nothing done."""
    holder: WebHolder = request.app.state.web
    web = holder.get()
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not web.sealer.csrf_valid(
        request.cookies.get(CSRF_COOKIE), token
    ):
        raise CsrfRefused()


CsrfChecked = Depends(csrf_protect)


# ----- sessions -----


@dataclass(frozen=True)
class Session:
    id: str
    caller: Caller


def current_session(env: str, request: Request, web: WebDep) -> Session:
    """The session's access token, checked as the API checks a bearer token (so a
    reset, a password change or expiry ends it), and still on the server's list."""
    data = web.sealer.unseal(SESSION_COOKIE, request.cookies.get(SESSION_COOKIE))
    if data is None or data.get("env") != env:
        raise LoginRequired(env)
    session_id, token = data.get("sid"), data.get("token")
    if not isinstance(session_id, str) or not isinstance(token, str):
        raise LoginRequired(env)
    try:
        caller = current_caller(
            env, web.services, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        )
    except ApiError:
        raise LoginRequired(env, "session_ended") from None
    if not web.sessions.contains(session_id, web.services.clock.now()):
        raise LoginRequired(env)
    return Session(session_id, caller)


SessionDep = Annotated[Session, Depends(current_session)]


def require_role(session: Session, *roles: str) -> None:
    if not session.caller.has_any(*roles):
        raise PageError(
            403,
            "Access denied",
            "Your account does not have the role this page needs. "
            "Ask an administrator if you think it should.",
        )


def start_session(
    web: Web, request: Request, response: Response, env: str, token: str, expires_in: int
) -> None:
    # A new login in this browser replaces its previous session, on the server too.
    previous = web.sealer.unseal(SESSION_COOKIE, request.cookies.get(SESSION_COOKIE))
    if previous is not None and isinstance(previous.get("sid"), str):
        web.sessions.remove(previous["sid"])
    session_id = secrets.token_urlsafe(32)
    now = web.services.clock.now()
    web.sessions.add(session_id, now + timedelta(seconds=expires_in), now)
    sealed = web.sealer.seal(SESSION_COOKIE, {"sid": session_id, "token": token, "env": env})
    set_cookie(
        web, request, response, SESSION_COOKIE, sealed, path=base(request, env), max_age=expires_in
    )


# ----- rendering -----


def render(
    web: Web,
    request: Request,
    template: str,
    *,
    env: str | None = None,
    session: Session | None = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    language = web.catalogue.negotiate(request.headers.get("accept-language"))
    translations = web.catalogue.translations(language)
    seed = csrf_seed(request)
    context = {
        "lang": language,
        "env": env,
        "base": base(request, env) if env else request.scope.get("root_path", ""),
        "static": f"{request.scope.get('root_path', '')}/_static",
        "session": session,
        "user": session.caller if session else None,
        "csrf_field": CSRF_FIELD,
        "csrf_token": web.sealer.csrf_token(seed),
        "gettext": translations.gettext,
        "ngettext": translations.ngettext,
        "_": translations.gettext,
        **values,
    }
    html = web.templates.get_template(template).render(context)
    response = HTMLResponse(html, status_code=status)
    if getattr(request.state, "new_csrf_seed", None):
        set_cookie(
            web,
            request,
            response,
            CSRF_COOKIE,
            seed,
            path=request.scope.get("root_path", "") or "/",
            max_age=None,
            samesite="strict",
        )
    return response
