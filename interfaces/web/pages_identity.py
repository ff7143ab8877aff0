"""The identity provider on the Environment settings page (role admin): connect,
change and disconnect it.

The same application commands as ``PUT`` and ``DELETE .../identity-provider``:
the discovery document is read before anything is stored, and the client secret
is write-only: the page never shows it, and an empty field keeps the stored one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from domain.errors import (
    IdentityProviderNotFoundError,
    IdentityProviderUnavailableError,
    InvalidIdentityProviderError,
    InvalidInputError,
)
from domain.identity import ProviderSettings
from interfaces.http.errors import status_of
from interfaces.web.context import (
    CsrfChecked,
    SessionDep,
    WebDep,
    base,
    redirect,
    render,
    require_role,
)
from interfaces.web.environment_page import ProviderForm, settings_page

router = APIRouter()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@router.post("/{env}/setup/identity-provider", dependencies=[CsrfChecked])
def save_identity_provider(
    env: str,
    request: Request,
    web: WebDep,
    session: SessionDep,
    issuer: Annotated[str, Form()] = "",
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    redirect_uris: Annotated[str, Form()] = "",
    password_login: Annotated[str, Form()] = "admins",  # noqa: S107 (a rule)
    provisioning: Annotated[str, Form()] = "auto",
    username_claim: Annotated[str, Form()] = "",
    groups_claim: Annotated[str, Form()] = "",
    two_factor: Annotated[str, Form()] = "aero",
) -> Response:
    """Connect or change: an empty client secret keeps the stored one."""
    require_role(session, "admin")
    form = ProviderForm(
        issuer=issuer.strip(),
        client_id=client_id.strip(),
        display_name=display_name,
        redirect_uris=redirect_uris,
        password_login=password_login,
        provisioning=provisioning,
        username_claim=username_claim.strip(),
        groups_claim=groups_claim.strip(),
        two_factor=two_factor,
    )
    settings = ProviderSettings(
        issuer=form.issuer,
        client_id=form.client_id,
        display_name=form.display_name,
        redirect_uris=frozenset(_lines(redirect_uris)),
        password_login=form.password_login,
        provisioning=form.provisioning,
        username_claim=form.username_claim,
        groups_claim=form.groups_claim or None,
        two_factor=form.two_factor,
    )
    services = web.services
    connected = services.application.environment(env).identity_provider is not None
    try:
        with services.writing_as(session.caller.username):
            services.identity.connect(env, settings, client_secret or None)
    except (
        InvalidInputError,
        InvalidIdentityProviderError,
        IdentityProviderUnavailableError,
    ) as e:
        # What the secret field held is not shown again, even here.
        form.error = e.detail
        form.error_field = e.field if isinstance(e, InvalidInputError) else "issuer"
        return settings_page(web, request, env, session, provider_form=form, status=status_of(e))
    outcome = "provider_changed" if connected else "provider_connected"
    return redirect(f"{base(request, env)}/setup/environment", saved=outcome)


@router.get("/{env}/setup/identity-provider/disconnect")
def disconnect_page(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    """Asks first: disconnecting ends the logins in progress through the provider."""
    require_role(session, "admin")
    provider = web.services.application.environment(env).identity_provider
    if provider is None:
        return redirect(f"{base(request, env)}/setup/environment")
    return render(
        web,
        request,
        "disconnect_provider.html",
        env=env,
        session=session,
        provider_name=provider.display_name,
        issuer=provider.issuer,
    )


@router.post("/{env}/setup/identity-provider/disconnect", dependencies=[CsrfChecked])
def disconnect(env: str, request: Request, web: WebDep, session: SessionDep) -> Response:
    require_role(session, "admin")
    try:
        with web.services.writing_as(session.caller.username):
            web.services.identity.disconnect(env)
    except IdentityProviderNotFoundError:
        # Disconnected already (another admin, or this form sent twice): the same end.
        pass
    return redirect(f"{base(request, env)}/setup/environment", saved="provider_disconnected")
