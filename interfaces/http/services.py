"""What one running HTTP app holds for its whole life: the root's container, and its metrics."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING

from application.clock import Clock
from application.federation import FederatedLogins
from application.history import History
from application.service import AeroAuth, last_saved_position
from domain.origin import acting_as
from interfaces.http.clientip import TrustedProxies
from interfaces.http.observability import Metrics, logger
from interfaces.http.readiness import Readiness
from interfaces.settings import Settings
from interfaces.tokens import TokenService
from projections.api import ReadModels

if TYPE_CHECKING:
    # Only for annotations: the composition root imports this package to wire it.
    from interfaces.composition import Container

# The positions that a request's writes left the read models behind, when the
# wait for them timed out. The middleware gives each request a list of its own
# (the threadpool that runs the endpoint copies the context, not the list), and
# says so in the answer: the Aero-Reads-Reflect-Write header and field.
read_models_behind: ContextVar[list[int] | None] = ContextVar("read_models_behind", default=None)


@dataclass
class Services:
    container: Container
    metrics: Metrics
    readiness: Readiness = field(init=False)

    def __post_init__(self) -> None:
        self.readiness = Readiness(
            self.container.read_models,
            self.container.write_probe,
            self.metrics,
            self.container.settings.ready_max_lag_seconds,
        )

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

        On timeout the write still stands and is answered, saying that the reads
        may not reflect it yet (the request's ``read_models_behind``); the lapse is
        logged and counted rather than turned into an error that would invite a retry.
        """
        if self.read_models is None or position is None:
            return
        started = monotonic()
        current = self.read_models.wait_for(position, self.settings.read_model_wait_seconds)
        self.metrics.read_model_wait.observe(monotonic() - started)
        if not current:
            self.metrics.read_model_timeouts.inc()
            logger.warning("read models did not reach position %d in time", position)
            behind = read_models_behind.get()
            if behind is not None:
                behind.append(position)

    def watch(self, interval: float = 2.0) -> None:
        """Refresh this process's view gauges every ``interval``, on a thread of its own:
        under several workers each sets its own (lease held or not), and a scrape sums
        them, whichever worker it reaches."""
        self._stop_watching = threading.Event()

        def refresh() -> None:
            while True:
                try:
                    self.readiness.view_status()
                except Exception as e:
                    logger.warning("cannot read the views' status: %s: %s", type(e).__name__, e)
                if self._stop_watching.wait(interval):
                    return

        threading.Thread(target=refresh, name="aero-view-gauges", daemon=True).start()

    def close(self) -> None:
        stop = getattr(self, "_stop_watching", None)
        if stop is not None:
            stop.set()
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
    services = Services(container, metrics)
    if container.read_models is not None:
        services.watch()
    return services
