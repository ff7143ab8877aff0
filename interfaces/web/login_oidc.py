"""Log in through the environment's identity provider (Microsoft Entra ID or any
OpenID Connect provider): the "Log in with ..." button and the redirect page.

The same application commands as the API's ``login/oidc`` routes: the
application makes the state, nonce and PKCE verifier, checks the provider's answer
and decides the outcome; these pages only carry the browser there and back.

Login CSRF: the state is bound to the browser that started the login, in a sealed
cookie limited to the redirect page. An answer whose state this browser did not
start (one an attacker got for their own account, say) is refused before its code
is used, and that login ends.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from domain.errors import (
    AeroError,
    IdentityProviderNotFoundError,
    IdentityProviderUnavailableError,
    InvalidOidcResponseError,
    InvalidRedirectUriError,
    UserExistsError,
    UserNotProvisionedError,
)
from interfaces.http.errors import status_of
from interfaces.web.context import CsrfChecked, Web, WebDep, clear_cookie, set_cookie
from interfaces.web.i18n import _
from interfaces.web.login_flow import (
    environment_or_404,
    go_on,
    login_form,
    login_path,
    redirect_uri,
)

router = APIRouter()

STATE_COOKIE = "aero_oidc"
NOT_BOUND = "state_not_bound"

# "Could not log in with NAME: why", short, revealing nothing a user should not see.
_STATE = _(
    "Could not log in with %(name)s: the login took too long, was used already, "
    "or was started in another browser. Try again."
)
_REFUSED = _("Could not log in with %(name)s: the identity provider did not let you in.")
_UNVERIFIED = _("Could not log in with %(name)s: its answer could not be verified. Try again.")
_UNAVAILABLE = _(
    "Could not log in with %(name)s: the identity provider did not answer. Try again later."
)
_NOT_PROVISIONED = _(
    "Could not log in with %(name)s: your account is not set up here. Ask an administrator."
)
_NAME_TAKEN = _(
    "Could not log in with %(name)s: a user here has the same name. "
    "Ask an administrator to link your account."
)
_NOT_CONNECTED = _(
    "Could not log in with %(name)s: this environment no longer uses an identity provider."
)
_NOT_REGISTERED = _(
    "Could not log in with %(name)s: this address is not one of the provider's "
    "redirect URIs. Ask an administrator."
)
_STATE_REASONS = frozenset(
    {"unknown_state", "state_used", "state_expired", "provider_changed", NOT_BOUND}
)


def _why(error: AeroError) -> str:
    if isinstance(error, InvalidOidcResponseError):
        if error.reason in _STATE_REASONS:
            return _STATE
        if error.reason.startswith("provider_error:"):
            return _REFUSED
        return _UNVERIFIED
    if isinstance(error, IdentityProviderUnavailableError):
        return _UNAVAILABLE
    if isinstance(error, UserNotProvisionedError):
        return _NOT_PROVISIONED
    if isinstance(error, UserExistsError):
        return _NAME_TAKEN
    if isinstance(error, InvalidRedirectUriError):
        return _NOT_REGISTERED
    return _NOT_CONNECTED


def _could_not(
    web: Web, request: Request, env: str, error: AeroError, provider_name: str | None
) -> Response:
    """The Log in page with the alert; the binding cookie goes, used or not."""
    gettext = web.catalogue.translations(
        web.catalogue.negotiate(request.headers.get("accept-language"))
    ).gettext
    name = provider_name or gettext(_("the identity provider"))
    message = gettext(_why(error)) % {"name": name}
    response = login_form(web, request, env, error=message, status=status_of(error))
    clear_cookie(web, request, response, STATE_COOKIE, _redirect_path(request, env))
    return response


def _redirect_path(request: Request, env: str) -> str:
    return f"{login_path(request, env)}/oidc"


def _provider_name(web: Web, env: str) -> str | None:
    provider = environment_or_404(web, env).identity_provider
    return provider.display_name if provider else None


@router.post("/{env}/login/oidc/start", dependencies=[CsrfChecked])
def start(env: str, request: Request, web: WebDep) -> Response:
    """The authorization request, with this page's redirect URI; the state stays
    with this browser until the provider sends it back."""
    name = _provider_name(web, env)
    try:
        started = web.services.identity.start_login(env, redirect_uri(web, request, env))
    except (
        IdentityProviderNotFoundError,
        InvalidRedirectUriError,
        IdentityProviderUnavailableError,
    ) as e:
        web.services.metrics.login_step("federated", e.code)
        return _could_not(web, request, env, e, name)
    response = RedirectResponse(started.authorization_url, status_code=303)
    sealed = web.sealer.seal(STATE_COOKIE, {"env": env, "state": started.state})
    set_cookie(
        web,
        request,
        response,
        STATE_COOKIE,
        sealed,
        path=_redirect_path(request, env),
        max_age=started.expires_in,
    )
    return response


def _bound(web: Web, request: Request, env: str, state: str) -> bool:
    data = web.sealer.unseal(STATE_COOKIE, request.cookies.get(STATE_COOKIE))
    if data is None or data.get("env") != env:
        return False
    started = data.get("state")
    return isinstance(started, str) and hmac.compare_digest(started.encode(), state.encode())


@router.get("/{env}/login/oidc")
def redirect_page(
    env: str,
    request: Request,
    web: WebDep,
    state: str = "",
    code: str | None = None,
    iss: str | None = None,
    error: str | None = None,
) -> Response:
    """The provider's answer (``code`` and ``state``, or ``error``): then on as after
    a password, or the Log in page saying why not."""
    name = _provider_name(web, env)
    identity = web.services.identity
    try:
        if not _bound(web, request, env, state):
            identity.refuse_callback(env, state, NOT_BOUND)
            raise InvalidOidcResponseError(NOT_BOUND, "this browser did not start that login")
        step = identity.finish_login(env, state, code, iss, error)
    except (
        InvalidOidcResponseError,
        IdentityProviderUnavailableError,
        UserNotProvisionedError,
        UserExistsError,
    ) as e:
        web.services.metrics.login_step("federated", e.code)
        return _could_not(web, request, env, e, name)
    response = go_on(web, request, env, step, "federated")
    clear_cookie(web, request, response, STATE_COOKIE, _redirect_path(request, env))
    return response
