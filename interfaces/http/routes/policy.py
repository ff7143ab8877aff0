"""The environment's 2FA policy: the "Require 2FA" checkbox and its group list."""

from __future__ import annotations

from fastapi import APIRouter

from interfaces.http.deps import AdminUser, AtInstant, CurrentUser, ServicesDep
from interfaces.http.errors import COMMON, ErrorBody, invalid
from interfaces.http.schemas import PolicyView, SetPolicyRequest

router = APIRouter(
    prefix="/v1/environments/{env}/policy",
    tags=["policy"],
    responses={
        **COMMON,
        401: {"model": ErrorBody, "description": "invalid_token"},
        403: {"model": ErrorBody, "description": "forbidden: a role is missing"},
    },
)


@router.get(
    "",
    responses={
        404: {"model": ErrorBody, "description": "environment_not_found (at that instant)"},
        422: invalid("invalid_timestamp: malformed or in the future"),
    },
)
def get_policy(env: str, caller: CurrentUser, at: AtInstant, services: ServicesDep) -> PolicyView:
    """The policy now (role admin), or with `?at=` as it stood then (admin or auditor).

    `require_2fa` false: nobody must use 2FA. True with no groups: every
    user. True with groups: members of at least one of them. A user with a
    registered authenticator is always asked for a code.
    """
    if at is None:
        caller.require_any("admin")
        return PolicyView.of(services.application.environment(env))
    caller.require_any("admin", "auditor")
    return PolicyView.of(services.history.environment_at(env, at))


@router.put("", responses={422: invalid("invalid groups")})
def set_policy(
    env: str, body: SetPolicyRequest, admin: AdminUser, services: ServicesDep
) -> PolicyView:
    """Set the policy; only what changed is recorded. Answers once the audit log has it."""
    with services.writing_as(admin.username):
        environment = services.application.set_policy(env, body.require_2fa, body.groups)
    return PolicyView.of(environment)
