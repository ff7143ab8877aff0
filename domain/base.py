"""What every aero-auth aggregate and event shares."""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.origin import current_command_id, current_origin
from domain.signals import TIME_HELD_BACK


class AeroAggregate(Aggregate):
    """An aggregate whose events record when, who acted and from where.

    Commands take ``now`` from the application's clock: event bodies re-run on
    every rebuild, so they may not read the clock themselves.
    """

    class Event(Aggregate.Event):
        actor: str | None
        ip: str | None
        user_agent: str | None
        # The command that caused the event (domain/origin.py). Keyword-only with a
        # default, so that events stored before it existed load with None.
        command_id: str | None = field(default=None, kw_only=True)

    class Created(Event, Aggregate.Created):
        pass

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        # The repository hands each command a deep copy of the cached aggregate. Every
        # attribute of an aero-auth aggregate holds an immutable value (str, int, bool,
        # datetime, UUID, frozenset, None; tests/unit/test_base.py checks this), so the
        # copy may share them; only the list of pending events is the aggregate's own.
        # copy.deepcopy walks every frozenset and datetime instead, on every load.
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.__dict__["_pending_events"] = list(self.__dict__["_pending_events"])
        return copied

    @staticmethod
    def _context() -> dict[str, Any]:
        origin = current_origin()
        return {
            "actor": origin.actor,
            "ip": origin.ip,
            "user_agent": origin.user_agent,
            "command_id": current_command_id(),
        }

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
        if at is not now:
            TIME_HELD_BACK.emit()
        self.trigger_event(event_class, timestamp=at, **self._context(), **fields)
