"""The caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Response

from interfaces.http import examples
from interfaces.http.deps import CurrentUser, Env, ServicesDep
from interfaces.http.openapi import ACCESS, READS_REFLECT_WRITE, answers, request
from interfaces.http.schemas import ChangeOwnPasswordRequest, RecoveryCodesView, UserView

router = APIRouter(prefix="/v1/environments/{env}/me", tags=["me"])


@router.get("", responses=answers(200, examples.ME, *ACCESS))
def get_me(env: Env, me: CurrentUser, services: ServicesDep) -> UserView:
    """The caller (access token, any role) as a UserView."""
    return UserView.of(me.user, services.application.environment(env), services.clock.now())


@router.post(
    "/password",
    status_code=204,
    response_class=Response,
    responses=answers(
        204,
        None,
        *ACCESS,
        "invalid_credentials",
        "weak_password",
        "password_login_disabled",
        "conflict",
        description="the password is changed; this access token has ended too",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.CHANGE_OWN_PASSWORD),
)
def change_own_password(
    env: Env, body: ChangeOwnPasswordRequest, me: CurrentUser, services: ServicesDep
) -> Response:
    """Change one's own password, proving the current one; a wrong one (401
    `invalid_credentials`) counts as a failed login. Other logins and access tokens,
    this one included, end. A user the identity provider created has no local
    password: 403 `password_login_disabled`."""
    with services.writing_as(me.username):
        services.application.change_own_password(
            env, me.username, body.current_password, body.new_password
        )
    return Response(status_code=204)


@router.post(
    "/recovery-codes",
    responses=answers(
        200,
        examples.RECOVERY_CODES_ISSUED,
        *ACCESS,
        "two_factor_not_registered",
        "conflict",
        headers=READS_REFLECT_WRITE,
    ),
)
def regenerate_recovery_codes(
    env: Env, me: CurrentUser, services: ServicesDep
) -> RecoveryCodesView:
    """Ten new recovery codes, shown once; the previous set stops working. Without an
    authenticator: 409 `two_factor_not_registered`."""
    with services.writing_as(me.username):
        codes = services.application.regenerate_recovery_codes(env, me.username)
    return RecoveryCodesView(recovery_codes=codes)
