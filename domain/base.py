"""What every aero-auth aggregate and event shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.origin import current_origin


class AeroAggregate(Aggregate):
    """An aggregate whose events record when, who acted and from where.

    Commands take ``now`` from the application's clock: event bodies re-run on
    every rebuild, so they may not read the clock themselves.
    """

    class Event(Aggregate.Event):
        actor: str | None
        ip: str | None
        user_agent: str | None

    class Created(Event, Aggregate.Created):
        pass

    @staticmethod
    def _context() -> dict[str, Any]:
        origin = current_origin()
        return {"actor": origin.actor, "ip": origin.ip, "user_agent": origin.user_agent}

    @classmethod
    def _start(
        cls, event_class: type[AeroAggregate.Created], id: UUID, now: datetime, **fields: Any
    ) -> Self:
        return cls._create(event_class, id=id, timestamp=now, **cls._context(), **fields)

    def _trigger(
        self, event_class: type[AeroAggregate.Event], now: datetime, **fields: Any
    ) -> None:
        # Within one aggregate, version order must be time order (point-in-time
        # reads search versions by timestamp); two racing processes' clocks may not
        # agree to the microsecond, so never step back behind the previous event.
        at = max(now, self.modified_on)
        self.trigger_event(event_class, timestamp=at, **self._context(), **fields)
