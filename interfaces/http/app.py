"""The FastAPI app: one long-lived container from the composition root, routers per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from interfaces.http import apidocs, errors
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

Tokens: the **operator token** only creates environments; a **login token**
(from the password step) only takes the second step of its own login; an
**access token** (from a completed login) carries the user, the environment
and the roles. Errors are `{"error": code, "detail": text}`.
"""


def create_app(wire: Callable[[], Container], *, max_request_bytes: int) -> FastAPI:
    """An app over what ``wire`` (the composition root) builds; nothing is opened until it
    starts."""
    # The web UI builds on this package (deps, services): imported here, so that
    # either package may be imported first.
    from interfaces.web import close_web_ui, create_web_ui

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
    # The web UI: the same services, pages under /ui/{env}/.
    ui = create_web_ui(lambda: app.state.services)
    app.mount("/ui", ui)
    return app
