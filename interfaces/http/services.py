"""What one running HTTP app holds for its whole life: the root's container, and its metrics."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from application.clock import Clock
from application.federation import FederatedLogins
from application.history import History
from application.service import AeroAuth, last_saved_position
from domain.origin import acting_as
from interfaces.http.clientip import TrustedProxies
from interfaces.http.observability import Metrics, logger
from interfaces.settings import Settings
from interfaces.tokens import TokenService
from projections.api import ReadModels

if TYPE_CHECKING:
    # Only for annotations: the composition root imports this package to wire it.
    from interfaces.composition import Container


@dataclass
class Services:
    container: Container
    metrics: Metrics

    @property
    def settings(self) -> Settings:
        return self.container.settings

    @property
    def clock(self) -> Clock:
        return self.container.clock

    @property
    def application(self) -> AeroAuth:
        return self.container.application

    @property
    def tokens(self) -> TokenService:
        return self.container.tokens

    @property
    def read_models(self) -> ReadModels | None:
        return self.container.read_models

    @property
    def proxies(self) -> TrustedProxies:
        return self.container.proxies

    @property
    def identity(self) -> FederatedLogins:
        return self.container.identity

    @property
    def history(self) -> History:
        """Point-in-time answers (``?at=``), rebuilt from the event store alone."""
        return History(self.application)

    def is_operator(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.container.operator_token.encode())

    @contextmanager
    def writing_as(self, actor: str) -> Iterator[None]:
        """Run a write as ``actor``; leave once the read models include it."""
        with acting_as(actor):
            yield
        self.wait_for_read_models(last_saved_position.get())

    def wait_for_read_models(self, position: int | None) -> None:
        """Reads reflect writes (API.md): answer an admin write once the views hold it.

        On timeout the write still stands and is answered; the lag is logged and
        counted rather than turned into an error that would invite a retry.
        """
        if self.read_models is None or position is None:
            return
        if not self.read_models.wait_for(position, self.settings.read_model_wait_seconds):
            self.metrics.read_model_timeouts.inc()
            logger.warning("read models did not reach position %d in time", position)

    def close(self) -> None:
        self.container.close()


def start_services(wire: Callable[[], Container], metrics: Metrics) -> Services:
    """The container from the composition root, its read models started."""
    container = wire()
    try:
        if container.read_models is not None:
            container.read_models.start()
    except BaseException:
        container.close()
        raise
    return Services(container, metrics)
