"""What one running HTTP app holds for its whole life."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from application.clock import Clock, SystemClock
from application.federation import FederatedLogins
from application.history import History
from application.service import AeroAuth, last_saved_position
from domain.origin import acting_as
from interfaces.composition import build_application, build_federated_logins, operator_token
from interfaces.http.clientip import TrustedProxies
from interfaces.http.observability import Metrics, logger
from interfaces.settings import Settings
from interfaces.tokens import TokenService, load_signing_key
from projections.api import ReadModels

ReadModelsFactory = Callable[[AeroAuth], ReadModels]


@dataclass
class Services:
    settings: Settings
    clock: Clock
    application: AeroAuth
    tokens: TokenService
    operator_token: str
    read_models: ReadModels | None
    metrics: Metrics
    proxies: TrustedProxies
    identity: FederatedLogins

    @property
    def history(self) -> History:
        """Point-in-time answers (``?at=``), rebuilt from the event store alone."""
        return History(self.application)

    def is_operator(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.operator_token.encode())

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
        try:
            if self.read_models is not None:
                self.read_models.close()
        finally:
            self.identity.relying_party.close()
            self.application.close()


def start_services(
    settings: Settings,
    metrics: Metrics,
    clock: Clock | None = None,
    read_models_factory: ReadModelsFactory | None = None,
) -> Services:
    clock = clock or SystemClock()
    tokens = TokenService(
        load_signing_key(settings), clock, timedelta(seconds=settings.access_token_ttl_seconds)
    )
    operator = operator_token(settings)
    application = build_application(settings, clock=clock)
    read_models: ReadModels | None = None
    try:
        if read_models_factory is not None:
            read_models = read_models_factory(application)
            read_models.start()
    except BaseException:
        application.close()
        raise
    return Services(
        settings=settings,
        clock=clock,
        application=application,
        tokens=tokens,
        operator_token=operator,
        read_models=read_models,
        metrics=metrics,
        proxies=TrustedProxies(settings.trusted_proxies),
        identity=build_federated_logins(settings, application),
    )
