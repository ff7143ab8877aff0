"""The FastAPI app: one long-lived container from the composition root, routers per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from interfaces.http import apidocs, errors, openapi
from interfaces.http.deps import reject_unknown_query
from interfaces.http.middleware import RequestContextMiddleware
from interfaces.http.observability import Metrics
from interfaces.http.routes import (
    audit,
    environments,
    identity_provider,
    introspection,
    login,
    me,
    operations,
    policy,
    users,
)
from interfaces.http.services import start_services

if TYPE_CHECKING:
    from interfaces.composition import Container

DESCRIPTION = """\
Two-factor authentication (TOTP authenticator apps) for Aero environments.

**Tokens** (`Authorization: Bearer <token>`): the **operator token** only creates
environments; a **login token** (from the password step) only takes the second step
of its own login; an **access token** (from a completed login) carries the user, the
environment and the roles, which are checked against the user's current roles. Any
other token, or one expired, forged or reused: 401 `invalid_token`.

**Errors** are `{"error": code, "detail": text}`. Each endpoint lists, per status,
the codes it may answer as an enum of `error`, with an example of each; a request
that does not fit the schema is a 422 `invalid_request` whose `detail` lists the
problems. Request bodies and query strings are strict: an unknown field or
parameter is a 422.

**Conventions**: timestamps are RFC 3339 (the service writes UTC with `Z`); lists
take `limit` and `cursor` and answer `next_cursor` (null on the last page);
`?at=<timestamp>` answers the state after every change at or before that instant.
Every answer carries `X-Request-ID`; those under `/v1` carry `Cache-Control:
no-store`. The client's IP and `User-Agent` are recorded on every event a request
causes.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "environments", "description": "Created by the operator, each with its admin."},
    {"name": "policy", "description": 'The "Require 2FA" checkbox and its groups.'},
    {"name": "users", "description": "Users of an environment, managed by its admins."},
    {
        "name": "login",
        "description": "The password step (or the identity provider's), then a code, a "
        "recovery code or registering an authenticator.",
    },
    {"name": "me", "description": "The caller's own account."},
    {"name": "audit", "description": "The audit log, for auditors."},
    {
        "name": "introspection",
        "description": "Whether an access token is still good (RFC 7662), for services.",
    },
    {
        "name": "identity provider",
        "description": "An OpenID Connect provider (such as Microsoft Entra ID) and the "
        "users linked to it.",
    },
    {"name": "operations", "description": "Probes, metrics and the token signing keys."},
]


def create_app(wire: Callable[[], Container], *, max_request_bytes: int) -> FastAPI:
    """An app over what ``wire`` (the composition root) builds; nothing is opened until it
    starts."""
    # The web UI builds on this package (deps, services): imported here, so that
    # either package may be imported first.
    from interfaces.web.app import close_web_ui, create_web_ui

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One AeroAuth for the app's whole life: eventsourcing's Application
        # closes its connection pool when it is garbage-collected.
        services = await run_in_threadpool(start_services, wire, metrics)
        app.state.services = services
        metrics.connect()
        try:
            yield
        finally:
            metrics.disconnect()
            metrics.process_ended()
            app.state.services = None
            await run_in_threadpool(close_web_ui, ui)
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="aero-auth",
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        docs_url=None,
        redoc_url=None,
    )
    apidocs.install(app)
    app.state.metrics = metrics
    app.state.services = None
    errors.install(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, max_request_bytes=max_request_bytes
    )
    # Starlette tries routes in order: the login steps, the busiest, first, then the
    # platform's probes (paths never overlap, so the order changes nothing else).
    for module in (login, operations, me, environments, policy, users, audit, introspection):
        app.include_router(module.router)
    for router in identity_provider.routers:
        app.include_router(router)
    openapi.install(app)
    # The web UI: the same services, pages under /ui/{env}/.
    ui = create_web_ui(lambda: app.state.services)
    app.mount("/ui", ui)
    return app
