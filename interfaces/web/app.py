"""The web UI as an ASGI app to mount under ``/ui``: pages, static assets, headers."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import EnvironmentNotFoundError
from interfaces.http.services import Services
from interfaces.web import (
    login,
    login_oidc,
    pages_account,
    pages_admin,
    pages_audit,
    pages_identity,
)
from interfaces.web.context import (
    STATIC,
    CsrfRefused,
    LoginRequired,
    PageError,
    WebHolder,
    content_security_policy,
    render,
)
from interfaces.web.i18n import _

CONTENT_SECURITY_POLICY = content_security_policy()
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """On every answer of the UI; pages (which may show codes) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/_static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _value in headers}
                extra = [h for h in _HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_web_ui(services: Callable[[], Services | None]) -> FastAPI:
    """The UI over the running services (``services()`` is None until the app starts).

    Call ``close_web_ui`` when the services close.
    """
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    holder = WebHolder(services)
    ui.state.web = holder
    ui.add_middleware(SecurityHeaders)
    ui.mount("/_static", StaticFiles(directory=STATIC), name="static")

    @ui.get("/", include_in_schema=False)
    def choose_environment(request: Request, environment: str = "") -> Response:
        slug = environment.strip().lower()
        if SLUG.fullmatch(slug):
            return RedirectResponse(f"{request.scope.get('root_path', '')}/{slug}/login", 303)
        error = _("There is no environment by that name.") if slug else None
        return render(
            holder.get(), request, "choose.html", error=error, status=404 if error else 200
        )

    ui.include_router(login.router)
    ui.include_router(login_oidc.router)
    for pages in (pages_account, pages_admin, pages_identity, pages_audit):
        ui.include_router(pages.router)

    @ui.exception_handler(LoginRequired)
    def login_required(request: Request, exc: LoginRequired) -> Response:
        url = f"{request.scope.get('root_path', '')}/{exc.env}/login"
        if exc.notice:
            url += f"?notice={exc.notice}"
        return RedirectResponse(url, status_code=303)

    @ui.exception_handler(PageError)
    def page_error(request: Request, exc: PageError) -> Response:
        return _error_page(holder, request, exc.status, exc.title, exc.message)

    @ui.exception_handler(CsrfRefused)
    def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return _error_page(
            holder,
            request,
            403,
            _("Form expired"),
            _(
                "This form was not sent from this site, or it has expired. "
                "Go back, reload the page and try again."
            ),
        )

    @ui.exception_handler(EnvironmentNotFoundError)
    def no_environment(request: Request, exc: EnvironmentNotFoundError) -> Response:
        return _error_page(
            holder, request, 404, _("Not found"), _("There is no environment at this address.")
        )

    @ui.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error_page(
                holder, request, 404, _("Not found"), _("There is no page at this address.")
            )
        if exc.status_code == 405:
            return _error_page(
                holder,
                request,
                405,
                _("Not allowed"),
                _("This address does not take this kind of request."),
            )
        return _error_page(holder, request, exc.status_code, _("Error"), str(exc.detail))

    return ui


def close_web_ui(ui: FastAPI) -> None:
    holder: WebHolder = ui.state.web
    holder.close()


def _error_page(
    holder: WebHolder, request: Request, status: int, title: str, message: str
) -> Response:
    try:
        web = holder.get()
    except PageError:
        return Response(message, status_code=status, media_type="text/plain")
    env = request.path_params.get("env")
    return render(
        web,
        request,
        "error.html",
        env=env if isinstance(env, str) else None,
        title=title,
        message=message,
        code=status,
        status=status,
    )
