"""Token introspection (RFC 7662): whether an access token is still good, asked by another service.

Offline verification with the published keys cannot see a reset, a password
change or a role change before the token expires; this endpoint does, at once.
The caller proves itself with a service credential the operator issued
(``aero-auth service-credentials create``), sent with HTTP Basic as RFC 7662
§2.1 and RFC 6749 §2.3.1 describe.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from application.service_credentials import ServiceCredentials
from interfaces.http import examples
from interfaces.http.deps import Env, ServicesDep
from interfaces.http.errors import ApiError
from interfaces.http.openapi import SERVED, answers
from interfaces.http.schemas import RequestBody, Text
from interfaces.http.services import Services
from interfaces.tokens import ACCESS_AUDIENCE, ISSUER, Session, introspect

router = APIRouter(prefix="/v1/environments/{env}", tags=["introspection"])

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class ServiceCredentialScheme(HTTPBasic):
    """HTTP Basic with the service credential; parsed here so that every failure,
    a malformed header included, is the one 401 ``invalid_client``."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            return None
        return HTTPBasicCredentials(username=client_id, password=secret)


_service_credential = ServiceCredentialScheme(
    scheme_name="ServiceCredential",
    description="client_id and client_secret from `aero-auth service-credentials create`",
    auto_error=False,
)


class IntrospectionRequest(RequestBody):
    token: Text = Field(description="the access token to check")
    token_type_hint: Text | None = Field(
        default=None, description="RFC 7662 §2.1; only access tokens are ever active"
    )


class IntrospectionView(BaseModel):
    """RFC 7662 §2.2. Inactive tokens answer ``{"active": false}`` and nothing else."""

    active: bool = Field(description="whether the token is a live access token of this env")
    sub: str | None = Field(default=None, description="the user's id")
    username: str | None = Field(default=None, description="the user's name, as created")
    env: str | None = Field(default=None, description="the environment's slug")
    roles: list[str] | None = Field(default=None, description="the user's roles, all current")
    iss: str | None = Field(default=None, description='the issuer: "aero-auth"')
    aud: str | None = Field(default=None, description='its audience: "aero-auth:access"')
    iat: int | None = Field(default=None, description="when it was issued, in seconds since 1970")
    nbf: int | None = Field(default=None, description="not valid before, as iat")
    exp: int | None = Field(default=None, description="when it expires, as iat")
    token_type: str | None = Field(default=None, description='"Bearer"')

    @classmethod
    def of(cls, session: Session | None) -> IntrospectionView:
        if session is None:
            return cls(active=False)
        claims = session.claims
        issued_at = int(claims.issued_at.timestamp())
        return cls(
            active=True,
            sub=str(session.user.id),
            username=session.user.username,
            env=session.user.environment,
            roles=sorted(session.user.roles),
            iss=ISSUER,
            aud=ACCESS_AUDIENCE,
            iat=issued_at,
            nbf=issued_at,
            exp=int(claims.expires_at.timestamp()),
            token_type="Bearer",  # noqa: S106 (RFC 6750's token type, not a secret)
        )


def invalid_client() -> ApiError:
    return ApiError(
        "invalid_client",
        "the service credential is missing, unknown, revoked or wrong",
        {"WWW-Authenticate": 'Basic realm="aero-auth"'},
    )


def _token_of(content_type: str, body: bytes) -> str:
    if content_type == FORM:
        # RFC 6749 §3.2 (which RFC 7662 builds on): unknown parameters are ignored,
        # and none may appear twice.
        try:
            params = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            params = {}
        tokens = params.get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body", "token"), "msg": "one token is required"}]
            )
        return tokens[0]
    if content_type == JSON:
        try:
            return IntrospectionRequest.model_validate(json.loads(body)).token
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_input=False)) from None
        except ValueError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "the body is not JSON"}]
            ) from None
    raise ApiError("unsupported_media_type", f"send {FORM} (RFC 7662) or {JSON}")


def _schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "description": "the access token to check"},
            "token_type_hint": {
                "type": "string",
                "description": "RFC 7662 §2.1; only access tokens are ever active",
                "examples": ["access_token"],
            },
        },
    }


@router.post(
    "/introspect",
    response_model=IntrospectionView,
    response_model_exclude_none=True,
    responses=answers(
        200,
        examples.INTROSPECTION,
        *SERVED,
        "invalid_client",
        "unsupported_media_type",
        description="active with the token's facts, or only `active: false`",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FORM: {"schema": _schema(), "examples": examples.INTROSPECT_FORM},
                JSON: {
                    "schema": {**_schema(), "additionalProperties": False},
                    "examples": examples.INTROSPECT_JSON,
                },
            },
        }
    },
)
async def introspect_token(
    env: Env,
    request: Request,
    services: ServicesDep,
    credential: Annotated[HTTPBasicCredentials | None, Depends(_service_credential)],
) -> JSONResponse:
    """Whether an access token is active now (RFC 7662), for a service credential of this
    environment.

    `active: false`, and nothing else, for any token that is not a live access
    token of this environment: expired, forged, a login token, another
    environment's, or one whose user has since had a two-factor reset, a
    password change or a role change. The answer is never cached (`no-store`).
    """
    if credential is None:
        raise invalid_client()
    credentials = ServiceCredentials(services.application)
    known = await run_in_threadpool(
        credentials.authenticate, env, credential.username, credential.password
    )
    if not known:
        raise invalid_client()
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    token = _token_of(content_type, await request.body())
    session = await run_in_threadpool(_introspect, services, token, env)
    # Cache-Control: no-store, as on every /v1 answer (RequestContextMiddleware).
    return JSONResponse(IntrospectionView.of(session).model_dump(exclude_none=True))


def _introspect(services: Services, token: str, env: str) -> Session | None:
    return introspect(services.tokens, services.application, token, env)
