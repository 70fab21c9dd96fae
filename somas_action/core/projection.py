"""`state.json` as a pure, deterministic fold of the event log.

Key order matters: `state.json` is rendered in insertion order, and `somas reconstruct` must
give the same bytes as the file written event by event, so every handler only updates keys the
first event created, or appends keys in the order events introduce them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, cast

from somas_action.core import names
from somas_action.core.domain import Event, StageRecord, State
from somas_action.core.events import CIRCUIT_BREAKER_EVENT_TYPES, EventType

_DIGEST_KEY = "projection_sha256"
# The provider name of recorded replies and conversations: they cost nothing.
RECORDED = "recorded"
Handler = Callable[[State, Event], None]


def new_stage_record() -> StageRecord:
    """A stage that has not started."""
    return {
        "status": names.STAGE_PENDING,
        "attempts": 0,
        "agent": None,
        "started_at": None,
        "completed_at": None,
        "duration_seconds": None,
        "artifacts": [],
        "quality_gates": [],
        "failures": 0,
        "last_error": None,
    }


def new_state(event: Event) -> State:
    """The state a `project_created` event opens."""
    if event["event_type"] != EventType.PROJECT_CREATED:
        raise ValueError(
            f"the log starts with {event['event_type']!r} at seq {event['seq']}, "
            "not project_created"
        )
    data = event["data"]
    pipeline = list(data["pipeline"])
    return {
        "schema_version": names.STATE_SCHEMA_VERSION,
        "project_id": event["project_id"],
        "issue_number": data["issue"]["number"],
        "title": data["issue"]["title"],
        "status": names.PENDING,
        "current_stage": pipeline[0],
        "created_at": event["ts"],
        "updated_at": event["ts"],
        "completed_at": None,
        "pipeline": pipeline,
        "stages": {stage: new_stage_record() for stage in pipeline},
        "human_gate": None,
        "recovery_info": {
            "last_successful_checkpoint": None,
            "checkpoints": [],
            "resume_stage": pipeline[0],
            "can_auto_recover": True,
            "last_failure": None,
        },
        "circuit_breakers": {},
        "dead_letter_count": 0,
        "dead_letter_ids": [],
        "pause": None,
        "incident": None,
        "applied_commands": {},
        "metrics": {"events": 0, "attempts": 0, "failed_attempts": 0, "agent_calls": 0},
        "last_event": {"seq": 0, "id": "", "hash": ""},
    }


def _stage_started(state: State, event: Event) -> None:
    record = _record(state, event)
    record.update(
        {
            "status": names.STAGE_IN_PROGRESS,
            "attempts": event["attempt"] or 0,
            "started_at": event["ts"],
            "completed_at": None,
            "duration_seconds": None,
        }
    )
    state["status"] = names.IN_PROGRESS
    state["metrics"]["attempts"] += 1


def _record(state: State, event: Event) -> StageRecord:
    """The record of the stage an event is about."""
    return state["stages"][event["stage"] or state["current_stage"]]


def _agent_invoked(state: State, event: Event) -> None:
    _record(state, event)["agent"] = event["data"]["agent"]
    state["metrics"]["agent_calls"] += 1


def _artifacts_written(state: State, event: Event) -> None:
    _record(state, event)["artifacts"] = [a["name"] for a in event["data"]["artifacts"]]


def _gates_evaluated(state: State, event: Event) -> None:
    _record(state, event)["quality_gates"] = event["data"]["results"]


def _attempt_failed(state: State, event: Event) -> None:
    error = event["data"]["error"]
    record = _record(state, event)
    record.update(
        {"status": names.STAGE_RETRYING, "last_error": error, "failures": record["failures"] + 1}
    )
    state["metrics"]["failed_attempts"] += 1
    state["recovery_info"]["last_failure"] = {
        "stage": event["stage"] or state["current_stage"],
        "attempt": event["attempt"],
        "error": error,
        "at": event["ts"],
    }


def _stage_completed(state: State, event: Event) -> None:
    _changes_settled(state, event)
    record = _record(state, event)
    record.update(
        {
            "status": names.STAGE_COMPLETED,
            "completed_at": event["ts"],
            "duration_seconds": _seconds_between(record["started_at"], event["ts"]),
            "last_error": None,
        }
    )


def _checkpoint(state: State, event: Event) -> None:
    data = event["data"]
    info = state["recovery_info"]
    info["last_successful_checkpoint"] = data["checkpoint_id"]
    info["checkpoints"].append(
        {
            "id": data["checkpoint_id"],
            "stage": event["stage"] or state["current_stage"],
            "seq": event["seq"],
            "created_at": event["ts"],
            "resume_stage": data["resume_stage"],
        }
    )
    info["resume_stage"] = data["resume_stage"]
    info["can_auto_recover"] = True
    info["last_failure"] = None


def _stage_failed(state: State, event: Event) -> None:
    _record(state, event)["status"] = names.STAGE_FAILED
    state["status"] = names.FAILED
    info = state["recovery_info"]
    info["resume_stage"] = event["stage"] or state["current_stage"]
    info["can_auto_recover"] = False


def _dead_letter(state: State, event: Event) -> None:
    state["dead_letter_ids"].append(event["data"]["dead_letter"]["id"])
    state["dead_letter_count"] = len(state["dead_letter_ids"])


def _dead_letters_removed(state: State, event: Event) -> None:
    data = event["data"]
    gone = set(data.get("ids") or [data.get("dead_letter_id")])
    state["dead_letter_ids"] = [i for i in state["dead_letter_ids"] if i not in gone]
    state["dead_letter_count"] = len(state["dead_letter_ids"])
    if event["event_type"] == EventType.DEAD_LETTER_RETRIED:
        _rewind(state, event)


def _rewind(state: State, event: Event) -> None:
    """Restart at `to_stage`: it and every later stage start afresh; earlier ones are kept."""
    target = event["to_stage"] or state["current_stage"]
    _reset_from(state, target)
    state["status"] = names.IN_PROGRESS
    state["human_gate"] = None
    state["pause"] = None
    state["completed_at"] = None
    info = state["recovery_info"]
    info.update({"resume_stage": target, "can_auto_recover": True, "last_failure": None})
    if info.get("parked"):
        info["parked"] = None  # an operator's restart/resume ends the park


def _reset_from(state: State, stage: str) -> None:
    pipeline = state["pipeline"]
    for name in pipeline[pipeline.index(stage) :]:
        state["stages"][name] = new_stage_record()


def _run_cancelled(state: State, event: Event) -> None:
    """The interrupted attempt does not count: the next run repeats it."""
    record = _record(state, event)
    record["status"] = names.STAGE_RETRYING
    record["attempts"] = max((event["attempt"] or 0) - 1, 0)


def _attempt_abandoned(state: State, event: Event) -> None:
    """Stopped by a control, the attempt does not count; died with its run, it does."""
    if event["data"]["counted"]:
        _attempt_failed(state, event)
    else:
        _run_cancelled(state, event)


def _paused(state: State, event: Event) -> None:
    state["pause"] = {
        "previous_status": state["status"],
        "reason": event["data"].get("reason"),
        "by": event["actor"],
        "at": event["ts"],
    }
    state["status"] = names.PAUSED


def _unpaused(state: State, event: Event) -> None:
    pause = state["pause"]
    state["status"] = pause["previous_status"] if pause else names.IN_PROGRESS
    state["pause"] = None


def _cancelled(state: State, event: Event) -> None:
    state["status"] = names.CANCELLED
    state["pause"] = None


def _restored(state: State, event: Event) -> None:
    data = event["data"]["restored"]
    state.update(
        {
            "status": data["status"],
            "human_gate": data["human_gate"],
            "stages": copy.deepcopy(data["stages"]),
            "pause": None,
        }
    )
    state["recovery_info"]["resume_stage"] = data["current_stage"]


def _incident(state: State, event: Event) -> None:
    incident = state["incident"]
    if incident is None or incident["status"] == names.INCIDENT_RESOLVED:
        incident = {
            "status": names.INCIDENT_OPEN,
            "opened_at": event["ts"],
            "opened_by": event["actor"],
            "notes": 0,
            "resolution": None,
            "resolved_at": None,
        }
    if event["event_type"] == EventType.INCIDENT_RESOLVED:
        incident.update(
            {
                "status": names.INCIDENT_RESOLVED,
                "resolution": event["data"]["text"],
                "resolved_at": event["ts"],
            }
        )
    else:
        incident["notes"] += 1
    state["incident"] = incident


def _gate_opened(state: State, event: Event) -> None:
    _changes_settled(state, event)
    stage = event["stage"] or state["current_stage"]
    state["stages"][stage]["status"] = names.STAGE_WAITING
    state["status"] = names.WAITING
    state["human_gate"] = {
        "stage": stage,
        "status": names.GATE_WAITING,
        "opened_at": event["ts"],
        "decided_at": None,
        "decided_by": None,
        "reason": None,
    }


def _gate_decided(state: State, event: Event) -> None:
    approved = event["event_type"] == EventType.HUMAN_GATE_APPROVED
    gate = state["human_gate"]
    if gate is not None:
        gate.update(
            {
                "status": names.GATE_APPROVED if approved else names.GATE_REJECTED,
                "decided_at": event["ts"],
                "decided_by": event["actor"],
                "reason": event["data"].get("reason"),
            }
        )
    state["status"] = names.IN_PROGRESS
    if not approved:
        target = event["to_stage"] or state["current_stage"]
        _reset_from(state, target)
        state["recovery_info"]["resume_stage"] = target


def _project_completed(state: State, event: Event) -> None:
    state["status"] = names.COMPLETED
    state["completed_at"] = event["ts"]
    state["human_gate"] = None


def _state_edit(state: State, event: Event) -> None:
    changes = event["data"]["changes"]
    if "status" in changes:
        state["status"] = changes["status"]
    if "current_stage" in changes:
        state["current_stage"] = changes["current_stage"]
    for stage, edited in changes.get("stages", {}).items():
        state["stages"][stage].update(edited)


def _breaker(state: State, event: Event) -> None:
    state["circuit_breakers"][event["data"]["service"]] = event["data"]["breaker"]


Counter = Literal[
    "provider_errors",
    "provider_fallbacks",
    "invalid_outputs",
    "debugger_runs",
    "debugger_fixes",
    "tool_calls",
]


def _count(metric: Counter) -> Handler:
    def handler(state: State, event: Event) -> None:
        metrics = state["metrics"]
        metrics[metric] = metrics.get(metric, 0) + 1
        if event["event_type"] == EventType.PROVIDER_CALL_FAILED:
            metrics["http_calls"] = metrics.get("http_calls", 0) + 1

    return handler


def _add_usage(bucket: dict[str, Any], data: Mapping[str, Any]) -> None:
    bucket["calls"] = bucket.get("calls", 0) + 1
    bucket["input_tokens"] = bucket.get("input_tokens", 0) + data["input_tokens"]
    bucket["output_tokens"] = bucket.get("output_tokens", 0) + data["output_tokens"]
    # Rounded at every step so the fold gives the same bytes however often it is replayed.
    bucket["cost_usd"] = round(bucket.get("cost_usd", 0.0) + data["cost_usd"], 6)


def _usage(state: State, event: Event) -> None:
    data = event["data"]
    metrics = state["metrics"]
    metrics["http_calls"] = metrics.get("http_calls", 0) + 1
    # Buckets are filled key by key (the order is part of state.json's bytes), so they are
    # built as plain dicts and only read back as UsageTotals.
    usage = cast(
        dict[str, Any], metrics.setdefault("usage", cast(Any, {"by_stage": {}, "by_model": {}}))
    )
    _add_usage(usage, data)
    _add_usage(usage["by_stage"].setdefault(event["stage"] or "-", {}), data)
    _add_usage(usage["by_model"].setdefault(f"{data['provider']}/{data['model']}", {}), data)


def _turn_recorded(state: State, event: Event) -> None:
    """A tool-loop turn: counted, and its tokens and cost are usage like any agent call's."""
    metrics = state["metrics"]
    metrics["agent_turns"] = metrics.get("agent_turns", 0) + 1
    if event["data"]["provider"] != RECORDED:  # a recording spends nothing
        _usage(state, event)


def _engine_run(state: State, event: Event) -> None:
    """An engine run: its tokens and cost (as the engine reported them) are usage."""
    if "cost_usd" not in event["data"]:
        return
    metrics = state["metrics"]
    metrics["engine_runs"] = metrics.get("engine_runs", 0) + 1
    usage = cast(
        dict[str, Any], metrics.setdefault("usage", cast(Any, {"by_stage": {}, "by_model": {}}))
    )
    data = event["data"]
    _add_usage(usage, data)
    _add_usage(usage["by_stage"].setdefault(event["stage"] or "-", {}), data)
    _add_usage(usage["by_model"].setdefault(f"{data['provider']}/{data['model']}", {}), data)


def _changes_requested(state: State, event: Event) -> None:
    """A reviewer sent the project back: like a rejection, `back_to` and later stages restart."""
    data = event["data"]
    target = event["to_stage"] or data["back_to"]
    _reset_from(state, target)
    state["status"] = names.IN_PROGRESS
    state["recovery_info"]["resume_stage"] = target
    metrics = state["metrics"]
    metrics["review_rounds"] = metrics.get("review_rounds", 0) + 1
    state["changes_requested"] = {
        "stage": event["stage"] or state["current_stage"],
        "back_to": data["back_to"],
        "round": data["round"],
        "max_rounds": data["max_rounds"],
        "summary": data["summary"],
        "comments": list(data["comments"]),
        "requested_at": event["ts"],
    }


def _changes_settled(state: State, event: Event) -> None:
    """The stage that requested changes approved (its gate opened, or it completed)."""
    request = state.get("changes_requested")
    if request is not None and request["stage"] == event["stage"]:
        state["changes_requested"] = None


def _parked(state: State, event: Event) -> None:
    data = event["data"]
    stage = event["stage"] or state["current_stage"]
    state["status"] = names.PARKED
    info = state["recovery_info"]
    info.update({"resume_stage": stage, "can_auto_recover": True})
    info["parked"] = {
        "stage": stage,
        "since": event["ts"],
        "reason": data["reason"],
        "kind": data["kind"],
        "services": data["services"],
        "retry_at": data["retry_at"],
    }
    if data["deferred_attempt"]:
        # The attempt could not be made at all; it does not use up one of max_retries.
        record = state["stages"][stage]
        record["attempts"] = data["deferred_attempt"] - 1
        record["status"] = names.STAGE_RETRYING if record["attempts"] else names.STAGE_PENDING


def _unparked(state: State, event: Event) -> None:
    state["status"] = names.IN_PROGRESS
    state["recovery_info"]["parked"] = None


def _notification_owed(state: State, event: Event) -> None:
    state.setdefault("outbox", []).append(event["data"]["notice"])


def _notification_sent(state: State, event: Event) -> None:
    said = set(event["data"]["notices"])
    state["outbox"] = [n for n in state.get("outbox", []) if n["id"] not in said]


def _nothing(state: State, event: Event) -> None:
    """Events that are audit only: they change no field of the state."""


_HANDLERS: dict[str, Handler] = {
    EventType.STAGE_STARTED: _stage_started,
    EventType.AGENT_INVOKED: _agent_invoked,
    EventType.AGENT_OUTPUT_ACCEPTED: _nothing,
    EventType.ARTIFACTS_WRITTEN: _artifacts_written,
    EventType.QUALITY_GATES_EVALUATED: _gates_evaluated,
    EventType.STAGE_ATTEMPT_FAILED: _attempt_failed,
    EventType.STAGE_COMPLETED: _stage_completed,
    EventType.CHECKPOINT_CREATED: _checkpoint,
    EventType.STAGE_FAILED: _stage_failed,
    EventType.DEAD_LETTER_RECORDED: _dead_letter,
    EventType.HUMAN_GATE_OPENED: _gate_opened,
    EventType.HUMAN_GATE_APPROVED: _gate_decided,
    EventType.HUMAN_GATE_REJECTED: _gate_decided,
    EventType.PROJECT_COMPLETED: _project_completed,
    EventType.STATE_EDIT_RECORDED: _state_edit,
    EventType.PROJECT_PAUSED: _paused,
    EventType.PROJECT_UNPAUSED: _unpaused,
    EventType.PROJECT_CANCELLED: _cancelled,
    EventType.STAGE_RESTARTED: _rewind,
    EventType.PROJECT_RESUMED: _rewind,
    EventType.STATE_RESTORED: _restored,
    EventType.PROJECT_RESET: _cancelled,
    EventType.DEAD_LETTER_RETRIED: _dead_letters_removed,
    EventType.DEAD_LETTERS_PURGED: _dead_letters_removed,
    EventType.DEAD_LETTERS_RESOLVED: _dead_letters_removed,
    EventType.INCIDENT_NOTED: _incident,
    EventType.INCIDENT_RESOLVED: _incident,
    EventType.RUN_CANCELLED: _run_cancelled,
    EventType.STAGE_ATTEMPT_ABANDONED: _attempt_abandoned,
    EventType.GIT_LOCK_CLEARED: _nothing,
    **{kind: _breaker for kind in CIRCUIT_BREAKER_EVENT_TYPES},
    EventType.PROVIDER_CALL_FAILED: _count("provider_errors"),
    EventType.PROVIDER_FALLBACK: _count("provider_fallbacks"),
    EventType.AGENT_USAGE_RECORDED: _usage,
    EventType.AGENT_OUTPUT_REJECTED: _count("invalid_outputs"),
    EventType.PROJECT_PARKED: _parked,
    EventType.PROJECT_UNPARKED: _unparked,
    EventType.DEBUGGER_INVOKED: _count("debugger_runs"),
    EventType.DEBUGGER_FIX_COMMITTED: _count("debugger_fixes"),
    EventType.DEBUGGER_FAILED: _nothing,
    EventType.ENGINE_RUN_FINISHED: _engine_run,
    EventType.ENGINE_TOOL_CALLED: _nothing,
    EventType.NOTIFICATION_OWED: _notification_owed,
    EventType.NOTIFICATION_SENT: _notification_sent,
    EventType.REVIEW_CHANGES_REQUESTED: _changes_requested,
    EventType.AGENT_CONVERSATION_STARTED: _nothing,
    EventType.AGENT_TURN_RECORDED: _turn_recorded,
    EventType.AGENT_TOOL_CALLED: _count("tool_calls"),
    EventType.AGENT_LOOP_STOPPED: _nothing,
    EventType.AGENT_LOOP_FINISHED: _nothing,
}
HANDLED_EVENT_TYPES = frozenset({EventType.PROJECT_CREATED, *_HANDLERS})


def apply(state: State, event: Event) -> State:
    """Apply one event (not the first: see `new_state`) to `state` in place and return it."""
    handler = _HANDLERS.get(event["event_type"])
    if handler is None:
        raise ValueError(f"unknown event_type {event['event_type']!r} at seq {event['seq']}")
    handler(state, event)
    return _stamp(state, event)


def _stamp(state: State, event: Event) -> State:
    if event["to_stage"] is not None:
        state["current_stage"] = event["to_stage"]
    command_id = event["data"].get("command_id")
    if command_id:
        state["applied_commands"][command_id] = event["seq"]
    state["updated_at"] = event["ts"]
    state["metrics"]["events"] = event["seq"]
    state["last_event"] = {"seq": event["seq"], "id": event["id"], "hash": event["hash"]}
    return state


def fold_one(state: State | None, event: Event) -> State:
    """Apply one event in place; the log's first event opens the state (streaming folds)."""
    return _stamp(new_state(event), event) if state is None else apply(state, event)


def fold_into(state: State | None, events: Iterable[Event]) -> State | None:
    """Apply events in place, one at a time (a streaming fold: the caller keeps no events)."""
    handlers, stamp = _HANDLERS, _stamp
    for event in events:
        if state is None:
            state = stamp(new_state(event), event)
            continue
        handler = handlers.get(event["event_type"])
        if handler is None:
            raise ValueError(f"unknown event_type {event['event_type']!r} at seq {event['seq']}")
        handler(state, event)
        stamp(state, event)
    return state


def apply_all(state: State | None, events: Iterable[Event]) -> State:
    """Apply events to a copy of `state` (or, from the log's first event, to a new state)."""
    result = copy.deepcopy(state) if state else None
    for event in events:
        result = _stamp(new_state(event), event) if result is None else apply(result, event)
    if result is None:
        raise ValueError("no events: a project's log starts with project_created")
    return result


def fold(events: Iterable[Event]) -> State:
    """The state a log describes."""
    return apply_all(None, events)


def stamp_log(state: State, log_bytes: int, log_crc32: int) -> State:
    """Record in `.last_event` how long the log was, and its CRC-32, at the last event."""
    last = state["last_event"]
    last["log_bytes"] = log_bytes
    last["log_crc32"] = f"{log_crc32:08x}"
    return state


def log_position(state: State) -> tuple[int, int] | None:
    """(log_bytes, log_crc32) recorded in the state, or None (written before they existed)."""
    last = state["last_event"]
    size, crc = last.get("log_bytes"), last.get("log_crc32")
    if not isinstance(size, int) or not isinstance(crc, str):
        return None
    try:
        return size, int(crc, 16)
    except ValueError:
        return None


def without_log_position(state: State) -> State:
    """The state as SOMAS wrote it before `.last_event` held the log position."""
    last = {k: v for k, v in state["last_event"].items() if not k.startswith("log_")}
    return cast(State, {**state, "last_event": last})


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def render(state: State) -> str:
    """`state.json` text: pretty JSON ending in a digest of everything above it."""
    body = {k: v for k, v in state.items() if k != _DIGEST_KEY}
    return json.dumps({**body, _DIGEST_KEY: _digest(body)}, indent=2, ensure_ascii=False) + "\n"


def digest_matches(written: Mapping[str, Any]) -> bool:
    """False when `state.json` was edited after SOMAS wrote it."""
    body = {k: v for k, v in written.items() if k != _DIGEST_KEY}
    return written.get(_DIGEST_KEY) == _digest(body)


def strip_digest(written: Mapping[str, Any]) -> State:
    """`state.json` as read, without its digest member (the caller checked its shape)."""
    return cast(State, {k: v for k, v in written.items() if k != _DIGEST_KEY})


def _seconds_between(start: str | None, end: str) -> float | None:
    """Seconds from start to end; never negative: a clock that stepped back between two runs
    gives 0 (the event that ended the stage records the step as `clock_stepped_back_seconds`)."""
    if start is None:
        return None
    delta = parse_ts(end) - parse_ts(start)
    return max(round(delta.total_seconds(), 3), 0.0)


def parse_ts(value: str) -> datetime:
    """Parse our UTC timestamps (`2026-11-28T06:30:00.123Z`)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
