"""Environments: created by the operator, each with its first admin."""

from __future__ import annotations

from fastapi import APIRouter

from interfaces.http import examples
from interfaces.http.deps import OperatorAccess, ServicesDep
from interfaces.http.openapi import READS_REFLECT_WRITE, SERVED, answers, request
from interfaces.http.schemas import CreateEnvironmentRequest, EnvironmentView

router = APIRouter(prefix="/v1/environments", tags=["environments"])

OPERATOR = "operator"


@router.post(
    "",
    status_code=201,
    dependencies=[OperatorAccess],
    responses=answers(
        201,
        examples.ENVIRONMENT,
        *SERVED,
        "invalid_token",
        "invalid_input",
        "weak_password",
        "environment_exists",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.CREATE_ENVIRONMENT),
)
def create_environment(body: CreateEnvironmentRequest, services: ServicesDep) -> EnvironmentView:
    """Create an environment and its first user, who gets the roles admin and auditor.

    Only the operator token may call this (any other token: 401 `invalid_token`).
    Validation and `weak_password` (422) are checked before `environment_exists` (409).
    """
    with services.writing_as(OPERATOR):
        environment = services.application.create_environment(
            body.slug, body.display_name, body.issuer, body.admin.username, body.admin.password
        )
    return EnvironmentView.of(environment)
