"""The pure breaker policy (`core.breaker`): one record in memory, `now` given, no files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from somas_action.core.breaker import Breaker, BreakerRecord, new_record, view
from somas_action.core.errors import ProviderError
from somas_action.core.events import EventType
from somas_action.core.settings import BreakerSettings

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SETTINGS = BreakerSettings(failure_threshold=3, recovery_timeout=60, half_open_requests=2)
POLICY = Breaker("openai", SETTINGS, actor="local:t")


def at(seconds: float) -> datetime:
    """`seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def opened(now: datetime = T0) -> BreakerRecord:
    """A record that has just opened after `failure_threshold` failures at `now`."""
    record = new_record()
    for _ in range(SETTINGS.failure_threshold):
        POLICY.record_failure(record, now, "transient", "HTTP 500")
    assert record["state"] == "open"
    return record


def half_open() -> BreakerRecord:
    """A record whose recovery timeout has passed and whose first probe is in flight."""
    record = opened()
    transition = POLICY.acquire(record, at(60))
    assert transition is not None and transition.to_state == "half_open"
    return record


def test_a_new_record_is_closed_and_lets_calls_through() -> None:
    record = new_record()
    assert POLICY.current_state(record, T0) == "closed"
    assert POLICY.acquire(record, T0) is None
    assert POLICY.blocked_until(record, T0) == (False, None)
    assert record == new_record()  # a closed breaker keeps no count of calls


def test_failures_below_the_threshold_count_and_a_success_forgets_them() -> None:
    record = new_record()
    assert POLICY.record_failure(record, T0, "timeout", "x" * 500) is None
    assert POLICY.record_failure(record, at(1), "transient", "HTTP 502") is None
    assert record["failures"] == 2 and record["state"] == "closed"
    assert record["last_failure"] == {
        "kind": "transient",
        "message": "HTTP 502",
        "at": "2026-01-01T09:00:01.000Z",
    }
    assert POLICY.record_success(record, at(2)) is None
    assert record["failures"] == 0


def test_long_failure_messages_are_cut_to_300_characters() -> None:
    record = new_record()
    POLICY.record_failure(record, T0, "transient", "x" * 500)
    assert record["last_failure"] is not None and record["last_failure"]["message"] == "x" * 300


def test_the_threshold_opens_the_breaker_until_the_recovery_timeout() -> None:
    record = new_record()
    POLICY.record_failure(record, T0, "transient", "a")
    POLICY.record_failure(record, T0, "transient", "b")
    transition = POLICY.record_failure(record, at(5), "timeout", "c")
    assert transition is not None
    assert (transition.service, transition.from_state, transition.to_state) == (
        "openai",
        "closed",
        "open",
    )
    assert transition.event_type == EventType.CIRCUIT_BREAKER_OPENED
    assert transition.reason == "3 failures in a row (last: timeout)"
    assert transition.view == {
        "state": "open",
        "since": "2026-01-01T09:00:05.000Z",
        "retry_at": "2026-01-01T09:01:05.000Z",
        "reason": "3 failures in a row (last: timeout)",
        "changed_by": "local:t",
    }
    assert transition.view == view(record)


def test_an_open_breaker_refuses_without_changing_its_record() -> None:
    record = opened()
    before = dict(record)
    with pytest.raises(ProviderError) as refused:
        POLICY.acquire(record, at(45))
    assert refused.value.kind == "circuit_open" and refused.value.retry_after == 15
    assert refused.value.service == "openai"
    assert str(refused.value).startswith("circuit breaker openai is open (3 failures in a row")
    assert "`somas breaker reset openai`" in str(refused.value)
    assert record == before
    assert POLICY.blocked_until(record, at(45)) == (True, at(60))


def test_an_open_breaker_past_its_retry_time_reads_as_half_open_without_a_write() -> None:
    record = opened()
    assert POLICY.current_state(record, at(59)) == "open"
    assert POLICY.current_state(record, at(60)) == "half_open"
    assert record["state"] == "open"  # reading never moves the state


def test_half_open_lets_exactly_the_configured_probes_through() -> None:
    record = opened()
    first = POLICY.acquire(record, at(60))
    assert first is not None and first.event_type == EventType.CIRCUIT_BREAKER_HALF_OPENED
    assert first.reason == "recovery timeout passed" and first.view["retry_at"] is None
    assert POLICY.acquire(record, at(61)) is None
    assert record["probes_in_flight"] == 2
    assert record["last_probe_at"] == "2026-01-01T09:01:01.000Z"
    with pytest.raises(ProviderError, match="half-open with every probe slot taken") as refused:
        POLICY.acquire(record, at(70))
    assert refused.value.retry_after == 51  # a recovery timeout after the last probe
    assert POLICY.blocked_until(record, at(70)) == (True, at(121))


def test_a_probe_success_closes_and_forgets_the_failures() -> None:
    record = half_open()
    closed = POLICY.record_success(record, at(61))
    assert closed is not None and closed.event_type == EventType.CIRCUIT_BREAKER_CLOSED
    assert (closed.from_state, closed.reason) == ("half_open", "probe succeeded")
    assert record["state"] == "closed" and record["failures"] == 0


def test_a_probe_failure_reopens_for_another_recovery_timeout() -> None:
    record = half_open()
    reopened = POLICY.record_failure(record, at(62), "transient", "still down")
    assert reopened is not None and reopened.event_type == EventType.CIRCUIT_BREAKER_OPENED
    assert (reopened.from_state, reopened.reason) == ("half_open", "probe failed (transient)")
    assert record["retry_at"] == "2026-01-01T09:02:02.000Z" and record["probes_in_flight"] == 0


def test_a_probe_that_never_reports_frees_its_slot_after_a_recovery_timeout() -> None:
    record = half_open()
    POLICY.acquire(record, at(60))
    with pytest.raises(ProviderError):
        POLICY.acquire(record, at(119))
    assert POLICY.acquire(record, at(120)) is None
    assert record["probes_in_flight"] == 1


def test_release_frees_a_probe_and_is_a_no_op_when_nothing_is_in_flight() -> None:
    record = half_open()
    POLICY.release(record)
    assert record["probes_in_flight"] == 0 and record["state"] == "half_open"
    POLICY.release(record)
    assert record["probes_in_flight"] == 0
    closed = new_record()
    POLICY.release(closed)
    assert closed == new_record()


def test_open_until_opens_once_and_only_ever_extends_the_wait() -> None:
    record = new_record()
    first = POLICY.open_until(record, T0, at(3600), "rate limited for 3600s")
    assert first is not None and first.reason == "rate limited for 3600s"
    assert record["retry_at"] == "2026-01-01T10:00:00.000Z"
    assert POLICY.open_until(record, at(1), at(60), "shorter") is None
    assert record["retry_at"] == "2026-01-01T10:00:00.000Z"
    assert POLICY.open_until(record, at(1), at(7200), "longer") is None
    assert record["retry_at"] == "2026-01-01T11:00:00.000Z"
    assert record["reason"] == "rate limited for 3600s"  # the opening reason stays


def test_trip_holds_open_with_no_retry_time_until_reset() -> None:
    record = new_record()
    tripped = POLICY.trip(record, T0)
    assert tripped.event_type == EventType.CIRCUIT_BREAKER_TRIPPED
    assert tripped.reason == "tripped by local:t" and record["retry_at"] is None
    years = at(10 * 365 * 86400)
    assert POLICY.current_state(record, years) == "open"
    assert POLICY.blocked_until(record, years) == (True, None)
    with pytest.raises(ProviderError, match="until an operator resets it") as refused:
        POLICY.acquire(record, years)
    assert refused.value.retry_after is None
    reset = POLICY.reset(record, years)
    assert (reset.from_state, reset.to_state) == ("open", "closed")
    assert reset.event_type == EventType.CIRCUIT_BREAKER_RESET
    assert POLICY.acquire(record, years) is None


def test_reset_clears_counts_and_probes_whatever_the_state() -> None:
    record = half_open()
    POLICY.reset(record, at(61))
    assert record == {
        **new_record(),
        "since": "2026-01-01T09:01:01.000Z",
        "reason": "reset by local:t",
        "changed_by": "local:t",
        "last_failure": record["last_failure"],
    }
