"""Users of an environment, managed by its admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from domain.credential import UserCredential
from interfaces.http.deps import AdminUser, AtInstant, CurrentUser, ReadModelsDep, ServicesDep
from interfaces.http.errors import COMMON, ErrorBody, Responses, invalid
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

router = APIRouter(
    prefix="/v1/environments/{env}/users",
    tags=["users"],
    responses={
        **COMMON,
        401: {"model": ErrorBody, "description": "invalid_token"},
        403: {"model": ErrorBody, "description": "forbidden: a role is missing"},
    },
)

_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "user_not_found"}}


def _view(services: Services, env: str, user: UserCredential) -> UserView:
    return UserView.of(user, services.application.environment(env), services.clock.now())


@router.post(
    "",
    status_code=201,
    responses={
        409: {"model": ErrorBody, "description": "user_exists"},
        422: invalid("invalid input or weak_password"),
    },
)
def create_user(
    env: str, body: CreateUserRequest, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Create a user. Roles are a subset of admin and auditor; groups are free strings."""
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
    responses={503: {"model": ErrorBody, "description": "read_models_unavailable"}},
)
def list_users(
    env: str,
    admin: AdminUser,
    read_models: ReadModelsDep,
    services: ServicesDep,
    two_factor: Annotated[
        Literal["all", "required", "registered", "required_unregistered"],
        Query(description="which users: all, required, registered or required_unregistered"),
    ] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> UserList:
    """The users, ordered by username, a page at a time (from the read models)."""
    page = read_models.list_users(env, two_factor, limit, cursor)
    now = services.clock.now()
    return UserList(
        users=[UserView.of_row(row, now) for row in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{username}",
    responses={**_NOT_FOUND, 422: invalid("invalid_timestamp")},
)
def get_user(
    env: str, username: str, caller: CurrentUser, at: AtInstant, services: ServicesDep
) -> UserView:
    """The user now (role admin), or with `?at=` as at that instant (admin or auditor),
    `required` judged by the policy and groups of that instant."""
    if at is None:
        caller.require_any("admin")
        return _view(services, env, services.application.user(env, username))
    caller.require_any("admin", "auditor")
    history = services.history
    user = history.user_at(env, username, at)
    return UserView.of(user, history.environment_at(env, at), at)


@router.put("/{username}/groups", responses={**_NOT_FOUND})
def change_groups(
    env: str, username: str, body: ChangeGroupsRequest, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Replace the user's groups, which decide whether the policy requires 2FA of them."""
    with services.writing_as(admin.username):
        user = services.application.change_groups(env, username, body.groups)
    return _view(services, env, user)


@router.put("/{username}/roles", responses={**_NOT_FOUND})
def change_roles(
    env: str, username: str, body: ChangeRolesRequest, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Replace the user's roles; access tokens are checked against current roles, so
    this takes effect at once."""
    with services.writing_as(admin.username):
        user = services.application.change_roles(env, username, body.roles)
    return _view(services, env, user)


@router.put(
    "/{username}/password",
    responses={**_NOT_FOUND, 422: invalid("weak_password")},
)
def set_password(
    env: str, username: str, body: SetPasswordRequest, admin: AdminUser, services: ServicesDep
) -> UserView:
    """Set a new password; the user's pending logins and access tokens end."""
    with services.writing_as(admin.username):
        user = services.application.change_password(env, username, body.password)
    return _view(services, env, user)


@router.post("/{username}/two-factor/reset", responses={**_NOT_FOUND})
def reset_two_factor(
    env: str,
    username: str,
    body: ResetTwoFactorRequest,
    admin: AdminUser,
    services: ServicesDep,
) -> UserView:
    """Forget the user's authenticator and recovery codes, and end their logins and
    access tokens. The next login asks them to register again if 2FA is required."""
    with services.writing_as(admin.username):
        user = services.application.reset_two_factor(env, username, body.reason)
    return _view(services, env, user)
