"""Every command validates its input, says what is wrong, and then stores nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.errors import (
    AeroError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    InvalidInputError,
    UserExistsError,
    UserNotFoundError,
    WeakPasswordError,
)
from tests.application.conftest import BuildApp
from tests.application.helpers import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    ENV,
    ISSUER,
    SavesTogether,
    position,
    race,
    with_environment,
)


def refused(
    app: AeroAuth, command: Callable[[], Any], error: type[AeroError], saying: str
) -> AeroError:
    """Run a command that must fail: it raises ``error`` naming ``saying`` and stores nothing."""
    before = position(app)
    with pytest.raises(error) as raised:
        command()
    assert saying in str(raised.value), str(raised.value)
    assert position(app) == before, "a failed command stored events"
    return raised.value


def test_creating_an_environment_validates_everything_before_storing_anything(
    app: AeroAuth,
) -> None:
    def create(slug: str = "acme", issuer: str = ISSUER, **kw: Any) -> Callable[[], Any]:
        values = {"display_name": "Acme", "admin_username": ALICE} | kw
        values.setdefault("admin_password", ALICE_PASSWORD)
        return lambda: app.create_environment(slug, issuer=issuer, **values)

    for slug in ["A", "-acme", "Acme", "ac_me", "a" * 64, ""]:
        refused(app, create(slug=slug), InvalidInputError, "slug")
    refused(app, create(issuer="Bizz:Stream"), InvalidInputError, "issuer")
    refused(app, create(issuer=""), InvalidInputError, "issuer")
    refused(app, create(display_name="  "), InvalidInputError, "display_name")
    refused(app, create(admin_username="al:ice"), InvalidInputError, "username")
    refused(app, create(admin_password="password123"), WeakPasswordError, "common")


def test_an_existing_environment_is_refused_and_left_as_it_was(app: AeroAuth) -> None:
    with_environment(app)

    error = refused(
        app,
        lambda: app.create_environment(ENV, "Other", "Other", "mallory", "her own passphrase"),
        EnvironmentExistsError,
        ENV,
    )

    assert error.code == "environment_exists"
    assert app.environment(ENV).display_name == "Acme"
    with pytest.raises(UserNotFoundError):
        app.user(ENV, "mallory")


def test_a_weak_admin_password_is_refused_before_an_existing_environment(
    app: AeroAuth,
) -> None:
    with_environment(app)

    refused(
        app,
        lambda: app.create_environment(ENV, "Acme", ISSUER, ALICE, "qwertyuiop"),
        WeakPasswordError,
        "common",
    )


def test_the_admin_gets_the_roles_admin_and_auditor(app: AeroAuth) -> None:
    with_environment(app)

    assert app.user(ENV, ALICE).roles == frozenset({"admin", "auditor"})


def test_creating_a_user_validates_everything_before_storing_anything(app: AeroAuth) -> None:
    with_environment(app)

    def create(username: str = BOB, password: str = BOB_PASSWORD, **kw: Any) -> Callable[[], Any]:
        return lambda: app.create_user(ENV, username, password, **kw)

    refused(
        app,
        lambda: app.create_user("nowhere", BOB, BOB_PASSWORD),
        EnvironmentNotFoundError,
        "nowhere",
    )
    for username in [
        "",
        "b" * 65,
        "bob:admin",
        "bob\nadmin",
        "\uff42\uff4f\uff42",
        "bob\u200b",
        "\u202ebob",
        " bob",
        "bob ",
    ]:
        refused(app, create(username=username), InvalidInputError, "username")
    for groups in [[""], ["g" * 65], ["fin\x00ance"], "finance"]:
        refused(app, create(groups=groups), InvalidInputError, "groups")
    refused(app, create(roles=["owner"]), InvalidInputError, "roles")
    refused(app, create(password="short"), WeakPasswordError, "at least 8")
    refused(app, create(password="bob"), WeakPasswordError, "at least 8")


def test_an_existing_user_is_refused_whatever_the_case(app: AeroAuth) -> None:
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)

    error = refused(
        app, lambda: app.create_user(ENV, "BOB", "another password"), UserExistsError, "BOB"
    )

    assert error.code == "user_exists"


def test_commands_on_an_unknown_user_or_environment_say_which(app: AeroAuth) -> None:
    with_environment(app)

    refused(app, lambda: app.change_groups(ENV, "nobody", []), UserNotFoundError, "nobody")
    refused(app, lambda: app.change_roles(ENV, "nobody", []), UserNotFoundError, "nobody")
    refused(
        app, lambda: app.change_password(ENV, "nobody", BOB_PASSWORD), UserNotFoundError, "nobody"
    )
    refused(app, lambda: app.reset_two_factor(ENV, "nobody", "why"), UserNotFoundError, "nobody")
    refused(app, lambda: app.regenerate_recovery_codes(ENV, "nobody"), UserNotFoundError, "nobody")
    refused(app, lambda: app.set_policy("nowhere", True, []), EnvironmentNotFoundError, "nowhere")
    refused(app, lambda: app.user("nowhere", ALICE), EnvironmentNotFoundError, "nowhere")


def test_changes_to_a_user_are_validated(app: AeroAuth) -> None:
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)

    refused(app, lambda: app.change_groups(ENV, BOB, ["ok", ""]), InvalidInputError, "groups")
    refused(app, lambda: app.change_groups(ENV, BOB, "finance"), InvalidInputError, "groups")
    refused(app, lambda: app.change_roles(ENV, BOB, ["root"]), InvalidInputError, "roles")
    refused(app, lambda: app.reset_two_factor(ENV, BOB, "   "), InvalidInputError, "reason")
    refused(app, lambda: app.set_policy(ENV, True, ["x" * 65]), InvalidInputError, "groups")
    refused(app, lambda: app.set_policy(ENV, "yes", []), InvalidInputError, "require_2fa")  # type: ignore[arg-type]


def test_two_admins_creating_the_same_user_at_once_exactly_one_wins(
    app: AeroAuth, build_app: BuildApp
) -> None:
    with_environment(app)
    SavesTogether.barrier = threading.Barrier(2)
    first, second = build_app(SavesTogether), build_app(SavesTogether)

    results = race(
        lambda: first.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"]),
        lambda: second.create_user(ENV, "Bob", "a different password", groups=["hr"]),
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], UserExistsError), errors
    [winner] = [r for r in results if not isinstance(r, Exception)]
    assert app.user(ENV, BOB).groups == winner.groups


def test_two_operators_creating_the_same_environment_at_once_exactly_one_wins(
    app: AeroAuth, build_app: BuildApp
) -> None:
    SavesTogether.barrier = threading.Barrier(2)
    first, second = build_app(SavesTogether), build_app(SavesTogether)

    results = race(
        lambda: first.create_environment(ENV, "Acme", ISSUER, ALICE, ALICE_PASSWORD),
        lambda: second.create_environment(ENV, "Acme 2", ISSUER, "mallory", "her own passphrase"),
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], EnvironmentExistsError), errors
    [winner] = [r for r in results if not isinstance(r, Exception)]
    assert app.environment(ENV).display_name == winner.display_name
    admins = [name for name in (ALICE, "mallory") if _exists(app, name)]
    assert len(admins) == 1


def _exists(app: AeroAuth, username: str) -> bool:
    try:
        app.user(ENV, username)
    except UserNotFoundError:
        return False
    return True


def test_unknown_users_and_environments_in_login_steps(app: AeroAuth, clock: FixedClock) -> None:
    with_environment(app)

    refused(
        app,
        lambda: app.start_registration("nowhere", BOB, "x"),
        EnvironmentNotFoundError,
        "nowhere",
    )
    refused(app, lambda: app.verify_code(ENV, "nobody", "x", "123456"), UserNotFoundError, "nobody")
