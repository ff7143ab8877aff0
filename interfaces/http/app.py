"""The FastAPI app: one long-lived AeroAuth, optional read models, routers per resource."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from application.clock import Clock
from application.service import AeroAuth
from interfaces.composition import build_read_models
from interfaces.http import errors
from interfaces.http.deps import reject_unknown_query
from interfaces.http.middleware import RequestContextMiddleware
from interfaces.http.observability import Metrics
from interfaces.http.routes import (
    audit,
    environments,
    identity_provider,
    login,
    me,
    operations,
    policy,
    users,
)
from interfaces.http.services import ReadModelsFactory, start_services
from interfaces.settings import Settings, from_environment
from projections.api import ReadModels

DESCRIPTION = """\
Two-factor authentication (TOTP authenticator apps) for Aero environments.

Tokens: the **operator token** only creates environments; a **login token**
(from the password step) only takes the second step of its own login; an
**access token** (from a completed login) carries the user, the environment
and the roles. Errors are `{"error": code, "detail": text}`.
"""


def _bound_malloc_arenas() -> None:
    """Keep argon2id's working memory (19 MiB per hash) from piling up per thread.

    glibc gives threads their own malloc arenas (up to 8 per core), and after the
    first large block is freed it serves the next ones from the arena, which keeps
    them: every arena that ever hashed held ~19 MiB, +150 MiB RSS after a few
    concurrent logins (docs/benchmarks.md, benchmark 6). With two arenas and at
    most ``cpu_count`` hashes at once (application.passwords.Argon2Hasher) the blocks
    are reused, not piled up; unmapping them after each hash instead cost 23 % of
    the verify rate (the kernel zeroes 19 MiB of fresh pages every time).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to bound
        pass


_M_ARENA_MAX = -8  # glibc's malloc.h


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    read_models_factory: ReadModelsFactory | None = None,
) -> FastAPI:
    """An app over the store ``settings`` name; nothing is opened until it starts."""
    _bound_malloc_arenas()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One AeroAuth for the app's whole life: eventsourcing's Application
        # closes its connection pool when it is garbage-collected.
        services = await run_in_threadpool(
            start_services, settings, metrics, clock, read_models_factory
        )
        app.state.services = services
        try:
            yield
        finally:
            app.state.services = None
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="aero-auth",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.metrics = metrics
    app.state.services = None
    errors.install(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, max_request_bytes=settings.max_request_bytes
    )
    # Starlette tries routes in order: the login steps, the busiest, first, then the
    # platform's probes (paths never overlap, so the order changes nothing else).
    for module in (login, operations, me, environments, policy, users, audit):
        app.include_router(module.router)
    for router in identity_provider.routers:
        app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory of ``aero-auth serve``: settings from AERO_* variables,
    with this process's read models (user directory, audit log)."""
    settings = from_environment()

    def read_models(application: AeroAuth) -> ReadModels:
        return build_read_models(settings, application)

    return create_app(settings, read_models_factory=read_models)
