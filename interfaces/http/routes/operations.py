"""Liveness, readiness, metrics and the public keys that verify access tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from interfaces.http import examples
from interfaces.http.deps import ServicesDep
from interfaces.http.error_codes import status_of_code
from interfaces.http.observability import Metrics, logger
from interfaces.http.openapi import COMMON, JSON, answers, text
from interfaces.http.schemas import HealthView, JsonWebKeySet, NotReadyView
from interfaces.http.services import Services

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses=answers(200, examples.HEALTH, *COMMON))
def healthz() -> HealthView:
    """The process answers."""
    return HealthView(status="ok")


def _problems(services: Services | None) -> list[str]:
    if services is None:
        return ["the service is starting"]
    return services.readiness.problems()


_NOT_READY: dict[str, Any] = {
    "model": NotReadyView,
    "description": "not ready, with the reasons",
    "content": {JSON: {"examples": examples.NOT_READY}},
}


@router.get(
    "/readyz",
    response_model=HealthView,
    responses={**answers(200, examples.READY, *COMMON), 503: _NOT_READY},
)
def readyz(request: Request) -> Any:
    """Ready while the event store accepts a write and every view is kept up to date.

    503, naming each reason, while: the store refuses or does not answer a write
    (within 0.7 s: this answers within a second even while the database hangs);
    the views have not caught up since this process started, or one stopped on an
    event; a view has no process holding its projector lease; or a view's oldest
    unprocessed event is older than AERO_READY_MAX_LAG_SECONDS. Results are kept
    for 2 s, so a burst of probes costs the store one write.
    """
    problems = _problems(getattr(request.app.state, "services", None))
    if problems:
        body = NotReadyView(detail="; ".join(problems), problems=problems)
        return JSONResponse(body.model_dump(), status_code=status_of_code(body.error))
    return HealthView(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses=answers(
        200,
        None,
        *COMMON,
        description="Prometheus text format",
        content=text(
            "text/plain",
            examples.METRICS,
            "two of the series",
            "Prometheus text exposition format 0.0.4",
        ),
    ),
)
def metrics(request: Request) -> Response:
    """Requests and latencies by route template, login steps by outcome, the views'
    positions, lag and lease holders, conflict retries, store errors, clock hold-backs;
    under several workers, the sum over all of them."""
    registry: Metrics = request.app.state.metrics
    services: Services | None = getattr(request.app.state, "services", None)
    if services is not None and services.read_models is not None:
        try:
            services.readiness.view_status()  # refreshes the views' gauges
        except Exception as e:
            logger.warning("cannot read the views' status: %s: %s", type(e).__name__, e)
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)


# Keys change only by a rotation and a restart, and a rotation keeps the previous key
# published for a whole token lifetime: five minutes of caching costs nobody a login.
JWKS_MAX_AGE_SECONDS = 300


@router.get(
    "/.well-known/jwks.json",
    response_model=JsonWebKeySet,
    responses=answers(
        200,
        examples.JWKS,
        *COMMON,
        "starting",
        headers={"Cache-Control": f"`public, max-age={JWKS_MAX_AGE_SECONDS}`"},
    ),
)
def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The public keys (RFC 7517) that verify access tokens: the current signing key,
    then the previous one while tokens it signed may live; `kid` names the key.
    Cache for up to five minutes, and fetch again on a `kid` not seen before."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    return services.tokens.jwks()
