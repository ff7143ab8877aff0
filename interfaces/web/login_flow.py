"""What both ways in share: the Log in page, and what follows a first step.

A first step, a password or the identity provider's answer, ends in one of the
password step's three outcomes; ``go_on`` turns each into the next page the same
way, so a login through the provider meets the same code step, registration and
session as one with a password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from application.login import LoginStep
from domain.credential import REGISTRATION, TWO_FACTOR
from domain.environment import Environment
from domain.errors import EnvironmentNotFoundError
from interfaces.web.context import (
    LOGIN_COOKIE,
    PageError,
    Web,
    base,
    content_security_policy,
    is_https,
    redirect,
    render,
    set_cookie,
    start_session,
)
from interfaces.web.i18n import _

PAGE_OF_STEP = {TWO_FACTOR: "two-factor", REGISTRATION: "register"}


def login_path(request: Request, env: str) -> str:
    return f"{base(request, env)}/login"


def environment_or_404(web: Web, env: str) -> Environment:
    try:
        return web.services.application.environment(env)
    except EnvironmentNotFoundError:
        raise PageError(
            404, _("Not found"), _("There is no environment at this address.")
        ) from None


def redirect_uri(web: Web, request: Request, env: str) -> str:
    """This server's ``/ui/{env}/login/oidc`` as the browser reaches it: the provider
    sends the browser back there, and the cookie that binds the login to the
    browser is only sent back to the same origin. It must be one of the provider's
    redirect URIs, which the application checks."""
    scheme = "https" if is_https(web, request) else request.url.scheme
    return f"{scheme}://{request.url.netloc}{login_path(request, env)}/oidc"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def login_form(
    web: Web, request: Request, env: str, *, status: int = 200, **values: Any
) -> Response:
    """The Log in page; with an identity provider connected, its "Log in with ..." button.

    That button's form is answered with a redirect to the provider's authorization
    endpoint, which this page's Content-Security-Policy must allow as a form target.
    """
    environment = environment_or_404(web, env)
    provider = environment.identity_provider
    response = render(
        web,
        request,
        "login.html",
        env=env,
        display_name=environment.display_name,
        provider_name=provider.display_name if provider else None,
        status=status,
        **values,
    )
    if provider is not None:
        response.headers["content-security-policy"] = content_security_policy(
            (_origin(provider.authorization_endpoint),)
        )
    return response


def go_on(web: Web, request: Request, env: str, step: LoginStep, metric: str) -> Response:
    """After the first step: the session and the home page, or the code step or
    registration with the login token in a sealed cookie limited to the login pages."""
    services = web.services
    services.metrics.login_step(metric, step.status)
    if step.challenge_id is None or step.expires_at is None:
        issued = services.tokens.issue_access(step.user)
        response = redirect(f"{base(request, env)}/")
        start_session(web, request, response, env, issued.token, issued.expires_in)
        return response
    next_step = step.next_step
    issued = services.tokens.issue_login(step.user, step.challenge_id, next_step, step.expires_at)
    response = redirect(f"{login_path(request, env)}/{PAGE_OF_STEP[next_step]}")
    sealed = web.sealer.seal(LOGIN_COOKIE, {"token": issued.token})
    set_cookie(
        web,
        request,
        response,
        LOGIN_COOKIE,
        sealed,
        path=login_path(request, env),
        max_age=issued.expires_in,
    )
    return response
