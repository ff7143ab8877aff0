"""Lockout arithmetic shared by the password step and the code step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Throttle:
    """Lock after ``max_failures`` consecutive failures; each further lockout doubles, capped."""

    max_failures: int
    first_lock: timedelta
    longest_lock: timedelta
    # The code step only: after this many failures in all the authenticator is
    # disabled until an admin reset (SECURITY.md 6, NIST 800-63B §3.2.2).
    disable_after: int | None = None

    def lock_until(self, now: datetime, lockouts_before: int) -> datetime:
        # Cap the exponent as well as the result: 2**lockouts grows without bound.
        factor: int = 2 ** min(lockouts_before, 32)
        lock: timedelta = min(self.first_lock * factor, self.longest_lock)
        return now + lock


# SECURITY.md 10: 10 failures, 1 minute doubling up to 15 minutes.
PASSWORD_THROTTLE = Throttle(10, timedelta(minutes=1), timedelta(minutes=15))
# SECURITY.md 6: 5 failures, 5 minutes doubling up to 1 hour; disabled after 100.
CODE_THROTTLE = Throttle(5, timedelta(minutes=5), timedelta(hours=1), disable_after=100)
