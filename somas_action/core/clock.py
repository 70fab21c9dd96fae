"""Injected time: the real clock for runs, a fake one for tests (which never sleep)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where the engine gets the time and how it waits."""

    def now(self) -> datetime:
        """The current UTC time."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for durations."""


def format_ts(moment: datetime) -> str:
    """Our timestamp format: UTC, millisecond precision, `Z` suffix."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class SystemClock:
    """Real time."""

    # Waits on this clock take real time, so a watched wait is cut into slices.
    real_time = True

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Really wait."""
        time.sleep(seconds)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; `sleep` advances it and records the wait."""

    def __init__(self, start: datetime | None = None, step_seconds: float = 1.0) -> None:
        self._now = start or datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        self.step = timedelta(seconds=step_seconds)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The fake time; each reading moves it on by `step_seconds`."""
        current = self._now
        self._now += self.step
        return current

    def sleep(self, seconds: float) -> None:
        """Record the wait and jump ahead."""
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        """Seconds since the epoch of the fake time."""
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        """Move the clock on."""
        self._now += timedelta(seconds=seconds)
