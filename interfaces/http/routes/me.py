"""The caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Response

from interfaces.http.deps import CurrentUser, ServicesDep
from interfaces.http.errors import COMMON, ErrorBody, invalid
from interfaces.http.schemas import ChangeOwnPasswordRequest, RecoveryCodesView, UserView

router = APIRouter(
    prefix="/v1/environments/{env}/me",
    tags=["me"],
    responses={**COMMON, 401: {"model": ErrorBody, "description": "invalid_token"}},
)


@router.get("")
def get_me(env: str, me: CurrentUser, services: ServicesDep) -> UserView:
    """The caller as a UserView."""
    return UserView.of(me.user, services.application.environment(env), services.clock.now())


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    responses={
        401: {"model": ErrorBody, "description": "invalid_credentials or invalid_token"},
        422: invalid("weak_password"),
    },
)
def change_own_password(
    env: str, body: ChangeOwnPasswordRequest, me: CurrentUser, services: ServicesDep
) -> Response:
    """Change one's own password, proving the current one; a wrong one counts as a failed
    login. Other logins and access tokens, this one included, end."""
    with services.writing_as(me.username):
        services.application.change_own_password(
            env, me.username, body.current_password, body.new_password
        )
    return Response(status_code=204)


@router.post(
    "/recovery-codes",
    responses={409: {"model": ErrorBody, "description": "two_factor_not_registered"}},
)
def regenerate_recovery_codes(
    env: str, me: CurrentUser, services: ServicesDep
) -> RecoveryCodesView:
    """Ten new recovery codes, shown once; the previous set stops working."""
    with services.writing_as(me.username):
        codes = services.application.regenerate_recovery_codes(env, me.username)
    return RecoveryCodesView(recovery_codes=codes)
