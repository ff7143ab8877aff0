"""The user directory: rows per user, the 2FA requirement, filters and pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.errors import InvalidCodeError
from projections.api import AuditQuery, Compliance, InvalidCursorError, UserRow
from projections.live import LiveReadModels
from tests.projections.helpers import login_challenge, make_environment, wrong_code
from tests.support import PASSWORD, caught_up, register


def usernames(read_models: LiveReadModels, two_factor: str = "all") -> list[str]:
    page = read_models.list_users("acme", two_factor, 1000, None)
    return [row.username for row in page.items]


def test_a_new_user_appears_with_groups_roles_and_no_requirement(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    app.create_user("acme", "Bob", PASSWORD, groups=["sales", "finance"], roles=["auditor"])
    caught_up(app, read_models)

    assert read_models.user("acme", "BOB") == UserRow(
        environment="acme",
        username="Bob",
        groups=("finance", "sales"),
        roles=("auditor",),
        required=False,
        rule=None,
        registered=False,
        locked_until=None,
    )
    assert usernames(read_models) == ["alice", "Bob"]
    assert read_models.user("acme", "nobody") is None


def test_a_policy_change_recomputes_every_user_of_the_environment(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    make_environment(app, "other")
    app.create_user("acme", "bob", PASSWORD, groups=["finance"])
    app.create_user("acme", "carol", PASSWORD, groups=["sales"])

    app.set_policy("acme", True, [])
    caught_up(app, read_models)
    assert usernames(read_models, "required") == ["alice", "bob", "carol"]
    assert read_models.user("acme", "bob").rule == "all"  # type: ignore[union-attr]
    assert read_models.list_users("other", "required", 10, None).items == []

    app.set_policy("acme", True, ["finance", "board"])
    caught_up(app, read_models)
    assert usernames(read_models, "required") == ["bob"]
    assert read_models.user("acme", "bob").rule == "group:finance"  # type: ignore[union-attr]
    assert read_models.compliance("acme") == Compliance("acme", 1, 0, 1)

    app.set_policy("acme", False, ["finance", "board"])
    caught_up(app, read_models)
    assert usernames(read_models, "required") == []
    assert read_models.compliance("acme") == Compliance("acme", 0, 0, 0)


def test_a_group_change_recomputes_that_user(app: AeroAuth, read_models: LiveReadModels) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD, groups=["sales"])
    app.set_policy("acme", True, ["finance"])
    caught_up(app, read_models)
    assert usernames(read_models, "required") == []

    app.change_groups("acme", "bob", ["finance", "sales"])
    app.change_roles("acme", "bob", ["admin"])
    caught_up(app, read_models)

    bob = read_models.user("acme", "bob")
    assert bob is not None
    assert (bob.groups, bob.roles, bob.required, bob.rule) == (
        ("finance", "sales"),
        ("admin",),
        True,
        "group:finance",
    )


def test_registration_lockout_and_reset_show_in_the_row(
    app: AeroAuth, read_models: LiveReadModels, clock: FixedClock
) -> None:
    make_environment(app)
    app.create_user("acme", "bob", PASSWORD)
    app.set_policy("acme", True, [])
    secret, _ = register(app, clock, "bob", PASSWORD)
    caught_up(app, read_models)
    assert usernames(read_models, "registered") == ["bob"]
    assert usernames(read_models, "required_unregistered") == ["alice"]
    assert read_models.compliance("acme") == Compliance("acme", 2, 1, 1)

    challenge = login_challenge(app, "acme", "bob")
    for _ in range(5):
        with pytest.raises(InvalidCodeError):
            app.verify_code("acme", "bob", challenge, wrong_code(secret, clock.now()))
    caught_up(app, read_models)
    bob = read_models.user("acme", "bob")
    assert bob is not None and bob.locked_until == clock.now() + timedelta(minutes=5)

    clock.advance(minutes=5)
    assert read_models.user("acme", "bob").locked_until is None  # type: ignore[union-attr]

    app.reset_two_factor("acme", "bob", "lost phone, ticket 4711")
    caught_up(app, read_models)
    assert usernames(read_models, "registered") == []
    assert usernames(read_models, "required_unregistered") == ["alice", "bob"]


def test_filtered_lists_page_in_username_order_with_an_opaque_cursor(
    app: AeroAuth, read_models: LiveReadModels
) -> None:
    make_environment(app)
    for name, groups in [
        ("dave", ["finance"]),
        ("Bob", ["finance"]),
        ("erin", []),
        ("carol", ["finance"]),
        ("Émile", ["finance"]),
        ("frank", []),
    ]:
        app.create_user("acme", name, PASSWORD, groups=groups)
    app.set_policy("acme", True, ["finance"])
    caught_up(app, read_models)

    def all_pages(two_factor: str, limit: int) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            page = read_models.list_users("acme", two_factor, limit, cursor)
            pages.append([row.username for row in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor

    assert all_pages("all", 3) == [["alice", "Bob", "carol"], ["dave", "erin", "frank"], ["Émile"]]
    assert all_pages("required", 2) == [["Bob", "carol"], ["dave", "Émile"]]
    assert all_pages("required_unregistered", 4) == [["Bob", "carol", "dave", "Émile"]]
    assert all_pages("registered", 5) == [[]]

    audit_cursor = read_models.audit(AuditQuery("acme"), 1, None).next_cursor
    for cursor in ["not-a-cursor", "e30", audit_cursor]:
        with pytest.raises(InvalidCursorError):
            read_models.list_users("acme", "all", 3, cursor)
    with pytest.raises(ValueError, match="two_factor"):
        read_models.list_users("acme", "sometimes", 3, None)
