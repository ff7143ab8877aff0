"""Environments: created by the operator, each with its first admin."""

from __future__ import annotations

from fastapi import APIRouter

from interfaces.http.deps import OperatorAccess, ServicesDep
from interfaces.http.errors import COMMON, ErrorBody, invalid
from interfaces.http.schemas import CreateEnvironmentRequest, EnvironmentView

router = APIRouter(prefix="/v1/environments", tags=["environments"], responses=COMMON)

OPERATOR = "operator"


@router.post(
    "",
    status_code=201,
    dependencies=[OperatorAccess],
    responses={
        401: {"model": ErrorBody, "description": "invalid_token: not the operator token"},
        409: {"model": ErrorBody, "description": "environment_exists"},
        422: invalid("invalid input or weak_password, checked before existence"),
    },
)
def create_environment(body: CreateEnvironmentRequest, services: ServicesDep) -> EnvironmentView:
    """Create an environment and its first user, who gets the roles admin and auditor.

    Only the operator token may call this. Validation and `weak_password`
    (422) are checked before `environment_exists` (409).
    """
    with services.writing_as(OPERATOR):
        environment = services.application.create_environment(
            body.slug, body.display_name, body.issuer, body.admin.username, body.admin.password
        )
    return EnvironmentView.of(environment)
