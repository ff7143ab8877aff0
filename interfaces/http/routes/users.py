"""Users of an environment, managed by its admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from domain.credential import UserCredential
from interfaces.http import examples
from interfaces.http.deps import (
    AdminUser,
    AtInstant,
    CurrentUser,
    Cursor,
    Env,
    Limit,
    ReadModelsDep,
    ServicesDep,
    Username,
)
from interfaces.http.openapi import READS_REFLECT_WRITE, ROLE, answers, request
from interfaces.http.schemas import (
    ChangeGroupsRequest,
    ChangeRolesRequest,
    CreateUserRequest,
    ResetTwoFactorRequest,
    SetPasswordRequest,
    UserList,
    UserView,
)
from interfaces.http.services import Services

router = APIRouter(prefix="/v1/environments/{env}/users", tags=["users"])

# An admin's change to one user: the user may not exist; the command retries on conflicts.
_CHANGE = (*ROLE, "user_not_found", "conflict")


def _view(services: Services, env: str, user: UserCredential) -> UserView:
    return UserView.of(user, services.application.environment(env), services.clock.now())


@router.post(
    "",
    status_code=201,
    responses=answers(
        201,
        examples.USER_CREATED,
        *ROLE,
        "invalid_input",
        "weak_password",
        "user_exists",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.CREATE_USER),
)
def create_user(
    env: Env, body: CreateUserRequest, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Create a user (role admin). Roles are a subset of admin and auditor; groups are
    free strings."""
    with services.writing_as(admin.username):
        user = services.application.create_user(
            env, body.username, body.password, body.groups, body.roles
        )
    return _view(services, env, user)


# The directory's rows carry no identity links: list items leave `identity` out
# rather than show a linked user as unlinked.
@router.get(
    "",
    response_model_exclude_unset=True,
    responses=answers(200, examples.USERS, *ROLE, "invalid_cursor", "read_models_unavailable"),
)
def list_users(
    env: Env,
    admin: AdminUser,
    read_models: ReadModelsDep,
    services: ServicesDep,
    two_factor: Annotated[
        Literal["all", "required", "registered", "required_unregistered"],
        Query(
            description="which users: all; those the policy requires 2FA of; those with an "
            "authenticator; those required but without one"
        ),
    ] = "all",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> UserList:
    """The users (role admin), ordered by username, a page at a time (from the read
    models)."""
    page = read_models.list_users(env, two_factor, limit, cursor)
    now = services.clock.now()
    return UserList(
        users=[UserView.of_row(row, now) for row in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{username}",
    responses=answers(
        200,
        examples.USER,
        *ROLE,
        "user_not_found",
        "environment_not_found",
        "invalid_timestamp",
    ),
)
def get_user(
    env: Env, username: Username, caller: CurrentUser, at: AtInstant, services: ServicesDep
) -> UserView:
    """The user now (role admin), or with `?at=` as at that instant (admin or auditor),
    `required` judged by the policy and groups of that instant. With `at`: 404 before
    the user (`user_not_found`) or the environment (`environment_not_found`) existed."""
    if at is None:
        caller.require_any("admin")
        return _view(services, env, services.application.user(env, username))
    caller.require_any("admin", "auditor")
    history = services.history
    user = history.user_at(env, username, at)
    return UserView.of(user, history.environment_at(env, at), at)


@router.put(
    "/{username}/groups",
    responses=answers(
        200,
        examples.GROUPS_CHANGED,
        *_CHANGE,
        "invalid_input",
        "groups_managed_by_provider",
        headers=READS_REFLECT_WRITE,
    ),
    openapi_extra=request(examples.CHANGE_GROUPS),
)
def change_groups(
    env: Env,
    username: Username,
    body: ChangeGroupsRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Replace the user's groups (role admin), which decide whether the policy requires
    2FA of them. While the identity provider sets groups (`groups_claim`): 409
    `groups_managed_by_provider`."""
    with services.writing_as(admin.username):
        user = services.application.change_groups(env, username, body.groups)
    return _view(services, env, user)


@router.put(
    "/{username}/roles",
    responses=answers(200, examples.ROLES_CHANGED, *_CHANGE, headers=READS_REFLECT_WRITE),
    openapi_extra=request(examples.CHANGE_ROLES),
)
def change_roles(
    env: Env,
    username: Username,
    body: ChangeRolesRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Replace the user's roles (role admin); access tokens are checked against current
    roles, so this takes effect at once."""
    with services.writing_as(admin.username):
        user = services.application.change_roles(env, username, body.roles)
    return _view(services, env, user)


@router.put(
    "/{username}/password",
    responses=answers(
        200, examples.PASSWORD_SET, *_CHANGE, "weak_password", headers=READS_REFLECT_WRITE
    ),
    openapi_extra=request(examples.SET_PASSWORD),
)
def set_password(
    env: Env,
    username: Username,
    body: SetPasswordRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Set a new password (role admin); the user's pending logins and access tokens end."""
    with services.writing_as(admin.username):
        user = services.application.change_password(env, username, body.password)
    return _view(services, env, user)


@router.post(
    "/{username}/two-factor/reset",
    responses=answers(
        200, examples.TWO_FACTOR_RESET, *_CHANGE, "invalid_input", headers=READS_REFLECT_WRITE
    ),
    openapi_extra=request(examples.RESET_TWO_FACTOR),
)
def reset_two_factor(
    env: Env,
    username: Username,
    body: ResetTwoFactorRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Forget the user's authenticator and recovery codes (role admin), and end their
    logins and access tokens. The next login asks them to register again if 2FA is
    required."""
    with services.writing_as(admin.username):
        user = services.application.reset_two_factor(env, username, body.reason)
    return _view(services, env, user)
