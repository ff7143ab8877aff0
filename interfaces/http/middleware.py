"""Per request: where it came from, how big it may be, and what became of it.

A plain ASGI middleware, not BaseHTTPMiddleware: the origin it sets is a
ContextVar, and it must reach the threadpool that runs the sync endpoints,
which copies the request task's context.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.service import last_saved_position
from domain.origin import Origin, originating
from interfaces.http.errors import error_response
from interfaces.http.observability import UNMATCHED_ROUTE, Metrics, escape, logger
from interfaces.http.services import Services, read_models_behind

# Said on an admin write answered before the users list and the audit log included
# it (the wait for them timed out): the header on every such answer, the field in
# its JSON object body.
BEHIND_HEADER = b"aero-reads-reflect-write"
BEHIND_FIELD = "reads_reflect_write"

# Every event a request causes records its user agent: longer ones are cut
# (README, "Limits").
USER_AGENT_LIMIT = 512


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_request_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = uuid.uuid4().hex
        status = 500
        ip = self._client_ip(scope, headers)
        user_agent = _user_agent(scope)

        behind: list[int] = []
        held_start: Message | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal status, held_start
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if scope["path"].startswith("/v1/"):
                    # Tokens, secrets and recovery codes travel in these bodies (RFC 6749 §5.1).
                    extra += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                extra.append((b"x-content-type-options", b"nosniff"))
                if behind:
                    extra.append((BEHIND_HEADER, b"false"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                if behind and _is_json(message):
                    held_start = message  # sent with the body, whose length changes
                    return
            elif message["type"] == "http.response.body" and held_start is not None:
                start, held_start = held_start, None
                start, message = _with_behind_field(start, message)
                await send(start)
            await send(message)

        try:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_request_bytes:
                await self._too_large()(scope, receive, send_with_headers)
                return
            # A request starts with nothing saved: the task's context is a copy of
            # whoever started the server, which may have saved something itself.
            saved = last_saved_position.set(None)
            lapses = read_models_behind.set(behind)
            try:
                with originating(Origin(actor=None, ip=ip, user_agent=user_agent)):
                    await self.app(scope, self._limited(receive), send_with_headers)
            finally:
                read_models_behind.reset(lapses)
                last_saved_position.reset(saved)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            # Route templates and escaped values only: no query string (it is
            # the client's), no body, no header that could carry a token.
            logger.info(
                "%s %s %d %.1fms route=%s ip=%s request_id=%s",
                escape(scope["method"]),
                escape(scope["path"]),
                status,
                elapsed * 1000,
                escape(route),
                escape(ip),
                request_id,
            )

    def _too_large(self) -> ASGIApp:
        return error_response(
            "payload_too_large",
            f"request bodies are limited to {self.max_request_bytes} bytes",
        )

    def _limited(self, receive: Receive) -> Receive:
        """Count a body sent without Content-Length (chunked) as it arrives."""
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_request_bytes:
                    # An HTTPException passes FastAPI's body parsing unchanged.
                    raise HTTPException(
                        413, f"request bodies are limited to {self.max_request_bytes} bytes"
                    )
            return message

        return counting

    def _client_ip(self, scope: Scope, headers: Headers) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        services: Services | None = _services(scope)
        if services is None:
            return peer
        return services.proxies.client_ip(peer, headers.getlist("x-forwarded-for"))


def _user_agent(scope: Scope) -> str | None:
    """The User-Agent as UTF-8 text, cut to USER_AGENT_LIMIT characters.

    Starlette reads header values as Latin-1, which would record "é" as "Ã©".
    Bytes that are not UTF-8 become U+FFFD. At most four bytes make a
    character, so decoding 4 x the limit is enough for the cut.
    """
    for name, value in scope["headers"]:
        if name == b"user-agent":
            text: str = value[: 4 * USER_AGENT_LIMIT].decode("utf-8", "replace")
            return text[:USER_AGENT_LIMIT]
    return None


def _is_json(start: Message) -> bool:
    return any(
        name == b"content-type" and value.startswith(b"application/json")
        for name, value in start.get("headers", [])
    )


def _with_behind_field(start: Message, body: Message) -> tuple[Message, Message]:
    """The JSON object body with ``reads_reflect_write: false``, and its new length.

    Only whole bodies of one message (FastAPI's JSON answers); anything else passes
    unchanged, and the header alone says it."""
    if body.get("more_body"):
        return start, body
    try:
        document = json.loads(body.get("body", b""))
    except ValueError:
        return start, body
    if not isinstance(document, dict):
        return start, body
    document[BEHIND_FIELD] = False
    encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(n, v) for n, v in start["headers"] if n != b"content-length"]
    headers.append((b"content-length", str(len(encoded)).encode()))
    return {**start, "headers": headers}, {**body, "body": encoded}


def _services(scope: Scope) -> Services | None:
    app: Any = scope.get("app")
    state = getattr(app, "state", None)
    return getattr(state, "services", None)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
