"""The Environment settings page as rendered: the 2FA policy with its coverage, and
the identity provider. Its forms are handled in pages_admin (the policy) and
pages_identity (the provider); either one shows the page again with its errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response

from domain.identity import IdentityProvider
from interfaces.web.context import Session, Web, render
from interfaces.web.i18n import _
from interfaces.web.login_flow import redirect_uri
from interfaces.web.page_helpers import queries

PROVIDER_NOTICES = {
    "provider_connected": _("Identity provider connected."),
    "provider_changed": _("Identity provider saved."),
    "provider_disconnected": _(
        "Identity provider disconnected. Every user may log in with a password again."
    ),
}


@dataclass
class ProviderForm:
    """The identity provider form's values (never the client secret), and its error."""

    issuer: str = ""
    client_id: str = ""
    display_name: str = "Microsoft"
    redirect_uris: str = ""
    password_login: str = "admins"  # noqa: S105 (a rule, not a password)
    provisioning: str = "auto"
    username_claim: str = "preferred_username"
    groups_claim: str = ""
    two_factor: str = "aero"
    error: str | None = None
    error_field: str | None = None
    notice: str | None = None
    connected: IdentityProvider | None = field(default=None, repr=False)

    @classmethod
    def of(cls, provider: IdentityProvider | None, default_redirect_uri: str) -> ProviderForm:
        if provider is None:
            return cls(redirect_uris=default_redirect_uri)
        return cls(
            issuer=provider.issuer,
            client_id=provider.client_id,
            display_name=provider.display_name,
            redirect_uris="\n".join(sorted(provider.redirect_uris)),
            password_login=provider.password_login,
            provisioning=provider.provisioning,
            username_claim=provider.username_claim,
            groups_claim=provider.groups_claim or "",
            two_factor=provider.two_factor,
            connected=provider,
        )


def _known_groups(web: Web, env: str) -> set[str]:
    read_models = queries(web)
    groups: set[str] = set()
    cursor = None
    while True:
        page = read_models.list_users(env, "all", 1000, cursor)
        for row in page.items:
            groups.update(row.groups)
        cursor = page.next_cursor
        if cursor is None:
            return groups


def settings_page(
    web: Web,
    request: Request,
    env: str,
    session: Session,
    *,
    saved: bool = False,
    error: str | None = None,
    provider_form: ProviderForm | None = None,
    provider_notice: str | None = None,
    status: int = 200,
) -> Response:
    environment = web.services.application.environment(env)
    selected = set(environment.selected_groups)
    compliance = queries(web).compliance(env)
    own_uri = redirect_uri(web, request, env)
    form = provider_form or ProviderForm.of(environment.identity_provider, own_uri)
    form.connected = environment.identity_provider
    form.notice = provider_notice
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
        provider=form,
        own_redirect_uri=own_uri,
        status=status,
    )
