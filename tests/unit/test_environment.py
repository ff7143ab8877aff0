"""The Environment aggregate: its 2FA policy is two settings, each recorded when it changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.environment import Environment
from domain.errors import InvalidInputError

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def acme() -> Environment:
    environment = Environment.create("acme", "Acme", "BizzStream Aero", NOW)
    environment.collect_events()
    return environment


def test_a_new_environment_requires_nobody() -> None:
    environment = Environment.create("acme", "Acme", "BizzStream Aero", NOW)

    [created] = environment.collect_events()
    assert isinstance(created, Environment.Created)
    assert environment.requiring_rule(frozenset({"finance"})) is None


def test_requiring_a_group_records_the_checkbox_and_the_group_list() -> None:
    environment = acme()

    environment.set_policy(True, ["finance"], NOW)

    checkbox, groups = environment.collect_events()
    assert isinstance(checkbox, Environment.TwoFactorRequirementChanged)
    assert checkbox.require_2fa is True
    assert isinstance(groups, Environment.GroupsSelected)
    assert groups.groups == frozenset({"finance"})
    assert environment.requiring_rule(frozenset({"finance"})) == "group:finance"


def test_setting_the_same_policy_again_records_nothing() -> None:
    environment = acme()
    environment.set_policy(True, ["finance"], NOW)
    environment.collect_events()

    environment.set_policy(True, ["finance"], NOW)

    assert environment.collect_events() == []


@pytest.mark.parametrize("require_2fa", ["yes", 1, None])
def test_the_checkbox_is_true_or_false(require_2fa: object) -> None:
    environment = acme()

    with pytest.raises(InvalidInputError) as error:
        environment.set_policy(require_2fa, [], NOW)  # type: ignore[arg-type]

    assert error.value.field == "require_2fa"
    assert environment.collect_events() == []


def test_invalid_groups_change_nothing() -> None:
    environment = acme()

    with pytest.raises(InvalidInputError):
        environment.set_policy(True, ["finance", ""], NOW)

    assert environment.collect_events() == []
