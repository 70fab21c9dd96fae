"""Controls that take effect while a run is going: safe points and watched waits.

A run checks, between every step, after an agent's reply arrives (before any effect) and
during every wait, whether anyone else wrote to the project's log since it last looked. That
check costs one small read of the log's end. When someone did (a pause, a cancel, stop-all's
pause, a breaker tripped and mirrored, an approval), the run reloads and asks the engine what
to do; if the answer is to stop, it stops there: `RunStopped`.

Waits (the retry backoff, a provider's Retry-After) go through `WatchedClock`, which prints a
progress line for a long wait and sleeps in slices, checking between them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from somas_action.core.clock import Clock
from somas_action.core.domain import JsonObject
from somas_action.state.store import ProjectStore

# Waits at least this long get a progress line.
SAY_AFTER_SECONDS = 2.0
# A real wait is cut into slices this long, with a check between them.
SLICE_SECONDS = 1.0


class RunStopped(Exception):
    """A control said stop at a safe point (paused, cancelled, emergency stop, breaker)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # The agent reply that had arrived when the run stopped (kept, not lost), if any.
        self.output: JsonObject | None = None


def log_moved(store: ProjectStore, offset: int, digest: str) -> bool:
    """Whether the log no longer ends at (offset, digest): someone else recorded something."""
    end = store.log.end()
    return end.size != offset or end.hash != digest


def watch_moved(watch: Watch) -> bool:
    """Whether the watched log moved since the run last looked."""
    return log_moved(watch.store, watch.offset, watch.digest)


@dataclass
class Watch:
    """What a running pipeline watches: its project's log, from the tail it last knew."""

    store: ProjectStore
    offset: int
    digest: str
    # Called when the log moved: reload and raise RunStopped if the run must stop.
    on_moved: Callable[[], None]

    def follow(self, store: ProjectStore, offset: int, digest: str) -> None:
        """The run recorded something itself: that is the new tail to compare against."""
        self.store, self.offset, self.digest = store, offset, digest

    def check(self) -> None:
        """A safe point: raise RunStopped if someone else's change means stop."""
        if log_moved(self.store, self.offset, self.digest):
            self.on_moved()


@dataclass
class WatchedClock:
    """A clock whose long waits say so and stop early when the run's watch says stop."""

    inner: Clock
    out: TextIO | None = None
    watch: Watch | None = None
    said: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        """The inner clock's time."""
        return self.inner.now()

    def monotonic(self) -> float:
        """The inner clock's monotonic reading."""
        return self.inner.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`: a progress line for a long wait, checks between real slices."""
        if seconds >= SAY_AFTER_SECONDS:
            self._say(f"  waiting {seconds:.0f}s (retry backoff or the service's Retry-After)")
        watch = self.watch
        if watch is None or not getattr(self.inner, "real_time", False):
            self.inner.sleep(seconds)
            if watch is not None:
                watch.check()
            return
        remaining = seconds
        while remaining > 0:
            piece = min(remaining, SLICE_SECONDS)
            self.inner.sleep(piece)
            remaining -= piece
            watch.check()

    def _say(self, line: str) -> None:
        self.said.append(line)
        print(line, file=self.out or sys.stderr, flush=True)
