"""Dependencies: the services, and who is calling with which token.

Three kinds of bearer token (API.md): the operator token, login tokens and
access tokens. Each endpoint names the one kind it accepts; any other token,
expired, forged or reused, is 401 ``invalid_token``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from domain.credential import REGISTRATION, TWO_FACTOR, UserCredential
from domain.instants import parse_rfc3339
from interfaces.http.errors import ApiError, forbidden, invalid_token, read_models_unavailable
from interfaces.http.services import Services
from interfaces.tokens import AccessClaims, InvalidTokenError, LoginClaims, authenticate
from projections.api import ReadModelQueries

# Dependencies that neither block nor compute much are ``async def``: FastAPI runs a
# plain ``def`` dependency in the thread pool, one hand-off per dependency per request.


async def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ApiError("starting", "the service is starting")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

# ----- path and paging parameters, described once -----

Env = Annotated[
    str, Path(description="the environment's slug, as created", examples=["acme"])
]
Username = Annotated[
    str,
    Path(
        description="the user's name, compared case-insensitively (NFC, then casefold)",
        examples=["bob"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries per page")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="`next_cursor` of the previous page, to get the next one with the same "
        "filters; leave it out for the first page",
    ),
]


async def get_read_models(services: ServicesDep) -> ReadModelQueries:
    if services.read_models is None:
        raise read_models_unavailable()
    return services.read_models


ReadModelsDep = Annotated[ReadModelQueries, Depends(get_read_models)]

# Three schemes, so OpenAPI says which token each endpoint takes.
_operator_scheme = HTTPBearer(
    scheme_name="OperatorToken",
    description="AERO_OPERATOR_TOKEN; only for creating environments",
    auto_error=False,
)
_login_scheme = HTTPBearer(
    scheme_name="LoginToken",
    description="from the password step; only for the second step of that login",
    auto_error=False,
)
_access_scheme = HTTPBearer(
    scheme_name="AccessToken", description="from a completed login", auto_error=False
)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise invalid_token("an Authorization: Bearer token is required")
    return credentials.credentials


# ----- operator -----


async def require_operator(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_operator_scheme)],
) -> None:
    if not services.is_operator(_token(credentials)):
        raise invalid_token("only the operator token may create environments")


OperatorAccess = Depends(require_operator)


# ----- access tokens -----


@dataclass(frozen=True)
class Caller:
    """The user behind an access token, loaded now: roles and sessions are current."""

    user: UserCredential
    claims: AccessClaims

    @property
    def username(self) -> str:
        return self.user.username

    def has_any(self, *roles: str) -> bool:
        return bool(self.user.roles & set(roles))

    def require_any(self, *roles: str) -> None:
        if not self.has_any(*roles):
            raise forbidden(f"this needs the role {' or '.join(roles)}")


def current_caller(
    env: Env,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_access_scheme)],
) -> Caller:
    # The same check as every other interface's (interfaces.tokens.authenticate): a
    # reset or a password change ends the tokens issued before it (SECURITY.md 13).
    try:
        session = authenticate(services.tokens, services.application, _token(credentials), env)
    except InvalidTokenError as e:
        raise invalid_token(e.detail) from None
    return Caller(user=session.user, claims=session.claims)


CurrentUser = Annotated[Caller, Depends(current_caller)]


def _role(*roles: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def check(caller: CurrentUser) -> Caller:
        caller.require_any(*roles)
        return caller

    return check


AdminUser = Annotated[Caller, Depends(_role("admin"))]
AuditorUser = Annotated[Caller, Depends(_role("auditor"))]


# ----- login tokens -----


def _login_session(step: str) -> Callable[..., Awaitable[LoginClaims]]:
    """A login token for this environment and this step; the application checks
    that its challenge is still the user's latest, which makes it single use."""

    async def check(
        env: Env,
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_login_scheme)],
    ) -> LoginClaims:
        try:
            claims = services.tokens.verify_login(_token(credentials))
        except InvalidTokenError:
            raise invalid_token() from None
        if claims.environment != env or claims.step != step:
            raise invalid_token("the login token is not for this step")
        return claims

    return check


RegistrationLogin = Annotated[LoginClaims, Depends(_login_session(REGISTRATION))]
TwoFactorLogin = Annotated[LoginClaims, Depends(_login_session(TWO_FACTOR))]


# ----- query parameters -----


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


_known_query_names: dict[int, frozenset[str]] = {}


def _known_query(route: APIRoute) -> frozenset[str]:
    # Routes are built once at start; keyed by id, as Dependant is not hashable.
    names = _known_query_names.get(id(route))
    if names is None:
        names = _known_query_names[id(route)] = _query_names(route.dependant)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are refused like unknown body fields: a mistyped
    filter (``?two_facter=required``) would otherwise quietly list everyone."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if not request.query_params:
        return
    unknown = sorted(set(request.query_params) - _known_query(route))
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown parameter"}
                for name in unknown
            ]
        )


async def _at(
    at: Annotated[
        str | None,
        Query(
            description="RFC 3339; the state after every change at or before that instant",
            examples=["2026-11-28T10:00:00Z"],
        ),
    ] = None,
) -> datetime | None:
    # Whether the instant lies in the future is the History's to judge, by the app's clock.
    return None if at is None else parse_rfc3339(at, "at")


AtInstant = Annotated[datetime | None, Depends(_at)]
