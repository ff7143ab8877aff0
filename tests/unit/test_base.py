"""What every aero-auth aggregate shares: its copies for commands share only immutable values."""

from __future__ import annotations

import copy
from datetime import datetime
from uuid import UUID

from domain.base import AeroAggregate
from domain.environment import Environment
from tests.unit.test_user_credential import NOW, TTL, registered_user

IMMUTABLE = (str, int, bool, float, datetime, UUID, type(None))


def is_immutable(value: object) -> bool:
    if isinstance(value, frozenset | tuple):
        return all(is_immutable(item) for item in value)
    return isinstance(value, IMMUTABLE)


def exercised_aggregates() -> list[AeroAggregate]:
    user = registered_user()
    user.pass_password_step("c2", True, NOW + TTL, NOW)
    user.collect_events()
    environment = Environment.create("acme", "Acme", "BizzStream Aero", NOW)
    environment.set_policy(True, ["finance", "hr"], NOW)
    environment.collect_events()
    return [user, environment]


def test_every_attribute_of_an_aggregate_holds_an_immutable_value() -> None:
    # The repository's copies share these values (AeroAggregate.__deepcopy__): a
    # list, dict or set here would be shared between the cache and every command.
    for aggregate in exercised_aggregates():
        for name, value in vars(aggregate).items():
            if name != "_pending_events":
                assert is_immutable(value), f"{type(aggregate).__name__}.{name}: {value!r}"


def test_a_command_on_a_copy_leaves_the_original_as_it_was() -> None:
    for aggregate in exercised_aggregates():
        before = dict(vars(aggregate))
        copied = copy.deepcopy(aggregate)
        assert copied is not aggregate and type(copied) is type(aggregate)
        assert vars(copied) == before

        if isinstance(copied, Environment):
            copied.set_policy(False, [], NOW)
        else:
            copied.complete_login("totp", NOW)  # type: ignore[attr-defined]

        assert copied.collect_events()
        assert vars(aggregate) == before
        assert aggregate.collect_events() == []
