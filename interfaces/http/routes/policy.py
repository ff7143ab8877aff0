"""The environment's 2FA policy: the "Require 2FA" checkbox and its group list."""

from __future__ import annotations

from fastapi import APIRouter

from interfaces.http import examples
from interfaces.http.deps import AdminUser, AtInstant, CurrentUser, Env, ServicesDep
from interfaces.http.openapi import READS_REFLECT_WRITE, ROLE, answers, request
from interfaces.http.schemas import PolicyView, SetPolicyRequest

router = APIRouter(prefix="/v1/environments/{env}/policy", tags=["policy"])


@router.get(
    "",
    responses=answers(
        200, examples.POLICY, *ROLE, "environment_not_found", "invalid_timestamp"
    ),
)
def get_policy(env: Env, caller: CurrentUser, at: AtInstant, services: ServicesDep) -> PolicyView:
    """The policy now (role admin), or with `?at=` as it stood then (admin or auditor).

    `require_2fa` false: nobody must use 2FA. True with no groups: every
    user. True with groups: members of at least one of them. A user with a
    registered authenticator is always asked for a code. With `at`: 404
    `environment_not_found` before the environment existed, 422
    `invalid_timestamp` for an instant malformed or in the future.
    """
    if at is None:
        caller.require_any("admin")
        return PolicyView.of(services.application.environment(env))
    caller.require_any("admin", "auditor")
    return PolicyView.of(services.history.environment_at(env, at))


@router.put(
    "",
    responses=answers(
        200, examples.POLICY, *ROLE, "invalid_input", "conflict", headers=READS_REFLECT_WRITE
    ),
    openapi_extra=request(examples.SET_POLICY),
)
def set_policy(
    env: Env, body: SetPolicyRequest, admin: AdminUser, services: ServicesDep
) -> PolicyView:
    """Set the policy (role admin); only what changed is recorded. Answers once the audit
    log has it."""
    with services.writing_as(admin.username):
        environment = services.application.set_policy(env, body.require_2fa, body.groups)
    return PolicyView.of(environment)
