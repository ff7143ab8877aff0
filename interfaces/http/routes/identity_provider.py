"""An environment's identity provider (Microsoft Entra ID or any OpenID Connect provider):
connecting it, linking users to it, and logging in through it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from application.login import LoginStep
from domain.credential import UserCredential
from domain.errors import AeroError, IdentityProviderNotFoundError
from domain.identity import IdentityProvider, ProviderSettings
from interfaces.http import examples
from interfaces.http.deps import AdminUser, AtInstant, CurrentUser, Env, ServicesDep, Username
from interfaces.http.openapi import READS_REFLECT_WRITE, ROLE, SERVED, answers, request
from interfaces.http.schemas import LoginStepView, RequestBody, Text, UserView
from interfaces.http.services import Services

PasswordLogin = Literal["all", "admins", "none"]
Provisioning = Literal["auto", "none"]
TwoFactorMode = Literal["aero", "provider", "amr"]


# ----- bodies -----


class SetIdentityProviderRequest(RequestBody):
    issuer: Text = Field(
        description="https://login.microsoftonline.com/<tenant-id>/v2.0 for an Entra tenant; "
        "https, or http on a loopback address"
    )
    client_id: Text = Field(description="the application (client) id of the app registration")
    client_secret: Text | None = Field(
        default=None,
        description="required on the first PUT; omit it later to keep the stored one. "
        "Stored encrypted, never shown again",
    )
    display_name: Text = Field(
        default="Microsoft", description="the provider's name on the login page's button"
    )
    redirect_uris: Annotated[list[Text], Field(min_length=1)] = Field(
        description="where the provider may send the browser back with the code"
    )
    password_login: PasswordLogin = Field(
        default="admins",
        description="who may still log in with a local password: all, admins (break-glass) or none",
    )
    provisioning: Provisioning = Field(
        default="auto", description="auto: a first login creates the user; none: admins link"
    )
    username_claim: Text = Field(
        default="preferred_username",
        description="the ID token's claim that names a user whom provisioning creates",
    )
    groups_claim: Text | None = Field(
        default=None, description="when set, every login sets the user's groups to this claim"
    )
    two_factor: TwoFactorMode = Field(
        default="aero",
        description="aero: our code step; provider: the provider enforces MFA (Conditional "
        "Access); amr: the ID token's amr must hold mfa, else our code step",
    )


class IdentityProviderView(BaseModel):
    """The connected provider; the client secret is never shown."""

    issuer: str = Field(description="the provider's issuer, as its discovery document names it")
    client_id: str = Field(description="the application (client) id of the app registration")
    client_secret_set: bool = Field(description="a client secret is stored (never shown)")
    display_name: str = Field(description="the provider's name on the login page's button")
    redirect_uris: list[str] = Field(
        description="where the provider may send the browser back, sorted"
    )
    password_login: PasswordLogin = Field(
        description="who may still log in with a local password: all, admins or none"
    )
    provisioning: Provisioning = Field(
        description="auto: a first login creates the user; none: admins link users"
    )
    username_claim: str = Field(description="the claim that names a provisioned user")
    groups_claim: str | None = Field(
        description="the claim whose strings become the user's groups at every login; "
        "null: aero-auth's admins manage groups"
    )
    two_factor: TwoFactorMode = Field(
        description="how a required 2FA is met on a federated login: aero, provider or amr"
    )

    @classmethod
    def of(cls, provider: IdentityProvider) -> IdentityProviderView:
        return cls(
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret_set=bool(provider.encrypted_client_secret),
            display_name=provider.display_name,
            redirect_uris=sorted(provider.redirect_uris),
            password_login=provider.password_login,  # type: ignore[arg-type]
            provisioning=provider.provisioning,  # type: ignore[arg-type]
            username_claim=provider.username_claim,
            groups_claim=provider.groups_claim,
            two_factor=provider.two_factor,  # type: ignore[arg-type]
        )


class LinkIdentityRequest(RequestBody):
    subject: Text = Field(description="the provider's sub claim for this user")


class StartFederatedLoginRequest(RequestBody):
    redirect_uri: Text = Field(description="one of the provider's redirect_uris")


class FederatedLoginView(BaseModel):
    authorization_url: str = Field(description="send the browser here")
    state: str = Field(description="comes back with the code; good once, for 10 minutes")
    expires_in: int = Field(description="seconds until the state expires")


class FederatedCallbackRequest(RequestBody):
    state: Text = Field(description="the state the provider sent back")
    code: Text | None = Field(
        default=None, description="the authorization code the provider sent back"
    )
    iss: Text | None = Field(default=None, description="RFC 9207: must equal the issuer")
    error: Text | None = Field(
        default=None, description="the provider's error code, when it refused the login"
    )
    error_description: Text | None = Field(
        default=None, description="the provider's text for its error"
    )


# ----- the interface function a web page's redirect target calls too -----


def login_step_view(services: Services, step: LoginStep, metric: str) -> LoginStepView:
    """A login step as the password step answers it: an access token, or a login token
    for the second step."""
    services.metrics.login_step(metric, step.status)
    if step.challenge_id is None or step.expires_at is None:
        issued = services.tokens.issue_access(step.user)
        return LoginStepView(
            status="authenticated", access_token=issued.token, expires_in=issued.expires_in
        )
    login_token = services.tokens.issue_login(
        step.user, step.challenge_id, step.next_step, step.expires_at
    )
    return LoginStepView(
        status=step.status,
        login_token=login_token.token,
        expires_in=login_token.expires_in,
    )


def complete_federated_login(
    services: Services, env: str, body: FederatedCallbackRequest
) -> LoginStepView:
    """The provider's answer (``code`` and ``state``, or ``error``) to a login step."""
    try:
        step = services.identity.finish_login(env, body.state, body.code, body.iss, body.error)
    except AeroError as e:
        services.metrics.login_step("federated", e.code)
        raise
    return login_step_view(services, step, "federated")


# ----- the provider (admin) -----

provider_router = APIRouter(
    prefix="/v1/environments/{env}/identity-provider", tags=["identity provider"]
)


@provider_router.put(
    "",
    responses=answers(
        200,
        examples.IDENTITY_PROVIDER,
        *ROLE,
        "invalid_input",
        "invalid_identity_provider",
        "identity_provider_unavailable",
        "conflict",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.SET_IDENTITY_PROVIDER),
)
def set_identity_provider(
    env: Env, body: SetIdentityProviderRequest, admin: AdminUser, services: ServicesDep
) -> IdentityProviderView:
    """Connect the environment's OpenID Connect provider (such as its Microsoft Entra
    tenant), or change it (role admin).

    The issuer's discovery document is read first (5 s time-out): nothing is stored
    unless it names this very issuer and its endpoints. The client secret is stored
    encrypted and never shown again; a later PUT may omit it to keep it.
    """
    settings = ProviderSettings(
        issuer=body.issuer,
        client_id=body.client_id,
        display_name=body.display_name,
        redirect_uris=frozenset(body.redirect_uris),
        password_login=body.password_login,
        provisioning=body.provisioning,
        username_claim=body.username_claim,
        groups_claim=body.groups_claim,
        two_factor=body.two_factor,
    )
    with services.writing_as(admin.username):
        provider = services.identity.connect(env, settings, body.client_secret)
    return IdentityProviderView.of(provider)


@provider_router.get(
    "",
    responses=answers(
        200,
        examples.IDENTITY_PROVIDER,
        *ROLE,
        "identity_provider_not_found",
        "environment_not_found",
        "invalid_timestamp",
    ),
)
def get_identity_provider(
    env: Env, caller: CurrentUser, at: AtInstant, services: ServicesDep
) -> IdentityProviderView:
    """The connected provider (role admin); with `?at=` (admin or auditor), the one
    connected at that instant: 404 when the environment had none then."""
    if at is None:
        caller.require_any("admin")
        return IdentityProviderView.of(services.identity.identity_provider(env))
    caller.require_any("admin", "auditor")
    provider = services.history.environment_at(env, at).identity_provider
    if provider is None:
        raise IdentityProviderNotFoundError(f"environment {env!r} had no identity provider then")
    return IdentityProviderView.of(provider)


@provider_router.delete(
    "",
    status_code=204,
    response_class=Response,
    responses=answers(
        204,
        None,
        *ROLE,
        "identity_provider_not_found",
        description="disconnected",
        headers=READS_REFLECT_WRITE,
    ),
)
def delete_identity_provider(env: Env, admin: AdminUser, services: ServicesDep) -> Response:
    """Disconnect the provider (role admin). Linked users keep their accounts and links, pending
    logins through the provider end, and password login is open to all again."""
    with services.writing_as(admin.username):
        services.identity.disconnect(env)
    return Response(status_code=204)


# ----- links (admin) -----

identity_router = APIRouter(
    prefix="/v1/environments/{env}/users/{username}/identity", tags=["identity provider"]
)

# A link's change: the provider or the user may be missing; retried on conflicts.
_LINK = (*ROLE, "identity_provider_not_found", "user_not_found", "conflict")


def _view(services: Services, env: str, user: UserCredential) -> UserView:
    return UserView.of(user, services.application.environment(env), services.clock.now())


@identity_router.put(
    "",
    responses=answers(
        200,
        examples.IDENTITY_LINKED,
        *_LINK,
        "invalid_input",
        "identity_in_use",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.LINK_IDENTITY),
)
def link_identity(
    env: Env,
    username: Username,
    body: LinkIdentityRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Link the user to the provider's subject (`sub`) (role admin): logins as that
    subject are this user's. Never by email or name, which a user or a tenant can
    change. 409 `identity_in_use` when another user has that subject."""
    with services.writing_as(admin.username):
        user = services.identity.link_identity(env, username, body.subject)
    return _view(services, env, user)


@identity_router.delete(
    "", responses=answers(200, examples.IDENTITY_UNLINKED, *_LINK, headers=READS_REFLECT_WRITE)
)
def unlink_identity(
    env: Env, username: Username, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Unlink the user from the provider's subject (role admin)."""
    with services.writing_as(admin.username):
        user = services.identity.unlink_identity(env, username)
    return _view(services, env, user)


# ----- login -----

login_router = APIRouter(prefix="/v1/environments/{env}/login/oidc", tags=["login"])


@login_router.post(
    "",
    responses=answers(
        200,
        examples.FEDERATED_LOGIN,
        *SERVED,
        "environment_not_found",
        "identity_provider_not_found",
        "invalid_redirect_uri",
    ),
    openapi_extra=request(examples.START_FEDERATED_LOGIN),
)
def start_federated_login(
    env: Env, body: StartFederatedLoginRequest, services: ServicesDep
) -> FederatedLoginView:
    """Start a login through the provider (no token): the authorization code flow with
    PKCE (S256). Send the browser to `authorization_url`; the provider sends it back
    to `redirect_uri` with `code` and `state`."""
    start = services.identity.start_login(env, body.redirect_uri)
    return FederatedLoginView(
        authorization_url=start.authorization_url, state=start.state, expires_in=start.expires_in
    )


@login_router.post(
    "/callback",
    response_model_exclude_none=True,
    responses=answers(
        200,
        examples.LOGIN_STEP,
        *SERVED,
        "environment_not_found",
        "invalid_oidc_response",
        "user_not_provisioned",
        "user_exists",
        "identity_provider_unavailable",
        "conflict",
    ),
    openapi_extra=request(examples.FEDERATED_CALLBACK),
)
def federated_callback(
    env: Env, body: FederatedCallbackRequest, services: ServicesDep
) -> LoginStepView:
    """The provider's answer. The same three outcomes as the password step; a login
    token goes on to the code step or registration exactly as after a password.

    The state is used up by its first callback, whatever the outcome. The ID token
    must pass every check: signature by the provider's keys, algorithm, issuer,
    audience, times (2 minutes' skew), nonce, and an Entra tenant's `tid`.
    """
    return complete_federated_login(services, env, body)


routers = (provider_router, identity_router, login_router)
