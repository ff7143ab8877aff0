"""Login attempts for usernames that do not exist."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from domain.base import AeroAggregate


class UnknownUserLogin(AeroAggregate):
    """A password step for a username that does not exist: auditors look for these.

    One aggregate per attempt (a random id), so recording it costs one insert
    and never collides with a user created later under that name.
    """

    TOPIC = "aero:UnknownUserLogin"

    class Created(AeroAggregate.Created):
        TOPIC = "aero:UnknownUserLogin.Created"
        environment: str
        username: str

    def __init__(self, environment: str, username: str) -> None:
        self.environment = environment
        self.username = username

    @classmethod
    def record(cls, environment: str, username: str, now: datetime) -> UnknownUserLogin:
        return cls._start(
            cls.Created, id=uuid4(), now=now, environment=environment, username=username
        )
