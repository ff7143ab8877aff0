"""Liveness, readiness, metrics and the public keys that verify access tokens."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from interfaces.http.deps import ServicesDep
from interfaces.http.observability import Metrics, logger
from interfaces.http.schemas import HealthView, NotReadyView
from interfaces.http.services import Services

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> HealthView:
    """The process answers."""
    return HealthView(status="ok")


def _problems(services: Services | None) -> list[str]:
    if services is None:
        return ["the service is starting"]
    problems = []
    recorder = services.application.recorder
    try:
        assert isinstance(recorder, ApplicationRecorder)
        recorder.max_notification_id()
    except Exception as e:
        logger.warning("event store unreachable: %s", type(e).__name__)
        problems.append(f"event store unreachable ({type(e).__name__})")
    if services.read_models is not None and not services.read_models.is_ready():
        problems.extend(services.read_models.problems() or ["read models are catching up"])
    return problems


@router.get(
    "/readyz",
    responses={503: {"model": NotReadyView, "description": "not ready, with the reasons"}},
)
def readyz(request: Request) -> Any:
    """Ready once the event store answers and the read models have caught up."""
    problems = _problems(getattr(request.app.state, "services", None))
    if problems:
        body = NotReadyView(detail="; ".join(problems), problems=problems)
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthView(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Requests and latencies by route template, login steps by outcome."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)


# Keys change only by a rotation and a restart, and a rotation keeps the previous key
# published for a whole token lifetime: five minutes of caching costs nobody a login.
JWKS_MAX_AGE_SECONDS = 300


@router.get("/.well-known/jwks.json")
def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The public keys (RFC 7517) that verify access tokens: the current signing key,
    then the previous one while tokens it signed may live; `kid` names the key.
    Cache for up to five minutes, and fetch again on a `kid` not seen before."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    return services.tokens.jwks()
