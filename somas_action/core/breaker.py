"""The circuit breaker state machine, as pure functions over one service's record.

closed --(failure_threshold counted failures in a row)--> open --(recovery_timeout)--> half_open
half_open lets at most `half_open_requests` probe calls through at once: a probe success closes
the breaker, a probe failure re-opens it. `trip` opens it until someone calls `reset`.

Each function changes the record in place and returns the `Transition` it made (or None); the
locked file store (`state.breakers`) persists records, and whoever serves a project records
each transition as a `circuit_breaker_*` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from somas_action.core.clock import format_ts
from somas_action.core.domain import BreakerView
from somas_action.core.error_kinds import CIRCUIT_OPEN
from somas_action.core.errors import ProviderError
from somas_action.core.events import EventType
from somas_action.core.names import BREAKER_CLOSED as CLOSED
from somas_action.core.names import BREAKER_HALF_OPEN as HALF_OPEN
from somas_action.core.names import BREAKER_OPEN as OPEN
from somas_action.core.ports import Observation
from somas_action.core.projection import parse_ts
from somas_action.core.settings import BreakerSettings


class FailureNote(TypedDict):
    """The last counted failure of a service."""

    kind: str
    message: str
    at: str


class BreakerRecord(TypedDict):
    """One service's breaker in `.somas/breakers.json`."""

    state: str
    failures: int
    since: str | None
    retry_at: str | None
    reason: str | None
    changed_by: str | None
    last_failure: FailureNote | None
    probes_in_flight: int
    last_probe_at: str | None


@dataclass(frozen=True)
class Transition:
    """One change of a breaker's state, to be recorded as an event."""

    service: str
    from_state: str
    to_state: str
    reason: str
    view: BreakerView

    def observation(self) -> Observation:
        """The change as the observation a provider or an engine run reports."""
        return Observation(
            self.event_type,
            self.to_state,
            {
                "service": self.service,
                "from": self.from_state,
                "reason": self.reason,
                "breaker": self.view,
            },
        )

    @property
    def event_type(self) -> EventType:
        """The `circuit_breaker_*` event type that records this change."""
        if self.reason.startswith("reset"):
            return EventType.CIRCUIT_BREAKER_RESET
        if self.reason.startswith("tripped"):
            return EventType.CIRCUIT_BREAKER_TRIPPED
        return {
            OPEN: EventType.CIRCUIT_BREAKER_OPENED,
            HALF_OPEN: EventType.CIRCUIT_BREAKER_HALF_OPENED,
            CLOSED: EventType.CIRCUIT_BREAKER_CLOSED,
        }[self.to_state]


def new_record() -> BreakerRecord:
    """A breaker that has never seen a failure."""
    return {
        "state": CLOSED,
        "failures": 0,
        "since": None,
        "retry_at": None,
        "reason": None,
        "changed_by": None,
        "last_failure": None,
        "probes_in_flight": 0,
        "last_probe_at": None,
    }


def view(record: BreakerRecord) -> BreakerView:
    """The part of a breaker record mirrored into each project's `state.json`."""
    return {
        "state": record["state"],
        "since": record["since"],
        "retry_at": record["retry_at"],
        "reason": record["reason"],
        "changed_by": record["changed_by"],
    }


@dataclass(frozen=True)
class Breaker:
    """The policy of one service's breaker: its name, settings, and who acts."""

    service: str
    settings: BreakerSettings
    actor: str

    # -- reading -------------------------------------------------------------------------------

    def current_state(self, record: BreakerRecord, now: datetime) -> str:
        """closed, open or half_open (an open breaker past its retry time counts as half_open)."""
        if record["state"] == OPEN and _due(record, now):
            return HALF_OPEN
        return record["state"]

    def blocked_until(self, record: BreakerRecord, now: datetime) -> tuple[bool, datetime | None]:
        """(True, when calls may resume or None if tripped) while calls would be refused now."""
        if record["state"] == OPEN and not _due(record, now):
            return True, _ts_or_none(record["retry_at"])
        if record["state"] == HALF_OPEN and not self._probe_free(record, now):
            last = _ts_or_none(record["last_probe_at"]) or now
            return True, last + timedelta(seconds=self.settings.recovery_timeout)
        return False, None

    # -- the call protocol -------------------------------------------------------------------

    def acquire(self, record: BreakerRecord, now: datetime) -> Transition | None:
        """Let one call through, or raise ProviderError(circuit_open) without any call made."""
        if record["state"] == CLOSED:
            return None
        transition = None
        if record["state"] == OPEN:
            if not _due(record, now):
                raise self.refusal(record, now)
            transition = self._move(record, HALF_OPEN, "recovery timeout passed", now)
            record["probes_in_flight"] = 0
        if not self._probe_free(record, now):
            raise self.refusal(record, now)
        record["probes_in_flight"] += 1
        record["last_probe_at"] = format_ts(now)
        return transition

    def record_success(self, record: BreakerRecord, now: datetime) -> Transition | None:
        """A call succeeded: a half-open breaker closes, a closed one forgets its failures."""
        if record["state"] == HALF_OPEN:
            record["failures"] = 0
            return self._move(record, CLOSED, "probe succeeded", now)
        if record["state"] == CLOSED:
            record["failures"] = 0
        return None

    def record_failure(
        self, record: BreakerRecord, now: datetime, kind: str, message: str
    ) -> Transition | None:
        """A counted failure (timeout, 5xx, 429, connection): may open the breaker."""
        record["failures"] += 1
        record["last_failure"] = {"kind": kind, "message": message[:300], "at": format_ts(now)}
        if record["state"] == HALF_OPEN:
            return self._open(record, now, f"probe failed ({kind})")
        if record["state"] == CLOSED and record["failures"] >= self.settings.failure_threshold:
            return self._open(record, now, f"{record['failures']} failures in a row (last: {kind})")
        return None

    def release(self, record: BreakerRecord) -> None:
        """A call ended with no verdict on the service (cancelled, 400, 401): free its probe."""
        if record["state"] == HALF_OPEN and record["probes_in_flight"]:
            record["probes_in_flight"] -= 1

    def open_until(
        self, record: BreakerRecord, now: datetime, until: datetime, reason: str
    ) -> Transition | None:
        """Refuse calls until `until` (a Retry-After longer than a run can wait)."""
        if record["state"] == OPEN:
            current = _ts_or_none(record["retry_at"])
            if current is not None and current < until:
                record["retry_at"] = format_ts(until)
            return None
        return self._open(record, now, reason, retry_at=until)

    # -- operator controls (the runbook's) ---------------------------------------------------

    def reset(self, record: BreakerRecord, now: datetime) -> Transition:
        """Force the breaker closed (the service is verified healthy)."""
        record.update(
            {"failures": 0, "probes_in_flight": 0, "last_probe_at": None, "retry_at": None}
        )
        return self._move(record, CLOSED, f"reset by {self.actor}", now)

    def trip(self, record: BreakerRecord, now: datetime) -> Transition:
        """Force the breaker open until `reset` (no calls at all)."""
        record.update({"probes_in_flight": 0, "retry_at": None})
        return self._move(record, OPEN, f"tripped by {self.actor}", now)

    # -- internals ---------------------------------------------------------------------------

    def _probe_free(self, record: BreakerRecord, now: datetime) -> bool:
        in_flight = record["probes_in_flight"]
        last = _ts_or_none(record["last_probe_at"])
        # A probe whose process died never reports back; after a recovery timeout its slot is
        # free again, or the breaker would stay half-open forever.
        if in_flight and last and (now - last).total_seconds() >= self.settings.recovery_timeout:
            record["probes_in_flight"] = in_flight = 0
        return in_flight < self.settings.half_open_requests

    def _open(
        self, record: BreakerRecord, now: datetime, reason: str, retry_at: datetime | None = None
    ) -> Transition:
        until = retry_at or now + timedelta(seconds=self.settings.recovery_timeout)
        record["probes_in_flight"] = 0
        record["retry_at"] = format_ts(until)
        return self._move(record, OPEN, reason, now)

    def _move(self, record: BreakerRecord, to: str, reason: str, now: datetime) -> Transition:
        before = record["state"]
        record.update({"state": to, "since": format_ts(now), "reason": reason})
        record["changed_by"] = self.actor
        if to != OPEN:
            record["retry_at"] = None
        return Transition(self.service, before, to, reason, view(record))

    def refusal(self, record: BreakerRecord, now: datetime) -> ProviderError:
        """The error a call refused by this breaker raises (no request was made)."""
        if record["state"] == OPEN:
            retry_at = _ts_or_none(record["retry_at"])
        else:
            last = _ts_or_none(record["last_probe_at"]) or now
            retry_at = last + timedelta(seconds=self.settings.recovery_timeout)
        wait = None if retry_at is None else max((retry_at - now).total_seconds(), 0.0)
        when = "until an operator resets it" if retry_at is None else f"until {format_ts(retry_at)}"
        what = "open" if record["state"] == OPEN else "half-open with every probe slot taken"
        return ProviderError(
            f"circuit breaker {self.service} is {what} ({record['reason']}); no call made, "
            f"calls resume {when} (`somas breaker reset {self.service}` once it is healthy)",
            kind=CIRCUIT_OPEN,
            retry_after=wait,
            service=self.service,
        )


def _due(record: BreakerRecord, now: datetime) -> bool:
    retry_at = _ts_or_none(record["retry_at"])
    return retry_at is not None and now >= retry_at


def _ts_or_none(value: Any) -> datetime | None:
    return parse_ts(value) if isinstance(value, str) else None
