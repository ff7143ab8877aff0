"""Lockout durations: each lockout doubles the last, up to a cap (SECURITY.md 6 and 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.throttle import CODE_THROTTLE, PASSWORD_THROTTLE, Throttle

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def lock_minutes(lockouts_before: range, throttle: Throttle) -> list[float]:
    return [(throttle.lock_until(NOW, n) - NOW) / timedelta(minutes=1) for n in lockouts_before]


def test_code_step_locks_5_then_10_20_40_minutes_and_at_most_an_hour() -> None:
    assert lock_minutes(range(6), CODE_THROTTLE) == [5, 10, 20, 40, 60, 60]


def test_code_step_locks_after_5_failures_and_disables_after_100() -> None:
    assert CODE_THROTTLE.max_failures == 5
    assert CODE_THROTTLE.disable_after == 100


def test_password_step_locks_1_then_2_4_8_minutes_and_at_most_15() -> None:
    assert lock_minutes(range(6), PASSWORD_THROTTLE) == [1, 2, 4, 8, 15, 15]
    assert PASSWORD_THROTTLE.max_failures == 10


def test_a_very_long_run_of_lockouts_stays_at_the_cap() -> None:
    assert CODE_THROTTLE.lock_until(NOW, 10_000) == NOW + timedelta(hours=1)
