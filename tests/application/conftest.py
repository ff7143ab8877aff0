"""Application-test fixtures: more applications on the test's store, wired like the real one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from application.clock import FixedClock
from application.passwords import Argon2Hasher
from application.service import AeroAuth, SecurityPolicy
from interfaces.composition import Store, secret_box, security_policy
from interfaces.settings import Settings

BuildApp = Callable[..., AeroAuth]


@pytest.fixture
def build_app(settings: Settings, clock: FixedClock) -> Iterator[BuildApp]:
    """Another application on the same store, e.g. a second process, or one with a fake part.

    ``build_app(cls=AeroAuth, hasher=None, box=None, security=None)``: the rest comes from
    the test's settings, as the composition root would wire it.
    """
    built: list[AeroAuth] = []

    def build(
        cls: type[AeroAuth] = AeroAuth,
        *,
        hasher: Argon2Hasher | None = None,
        box: Any = None,
        security: SecurityPolicy | None = None,
    ) -> AeroAuth:
        store = Store.from_url(settings.database_url)
        application = cls(
            store.eventsourcing_env(settings.postgres_pool_size),
            clock=clock,
            hasher=hasher,
            secret_box=box if box is not None else secret_box(settings),
            security=security or security_policy(settings),
        )
        built.append(application)
        return application

    yield build
    for application in built:
        application.close()
