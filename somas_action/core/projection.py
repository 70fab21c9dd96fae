"""`state.json` as a pure, deterministic fold of the event log."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from somas_action.core import events as ev
from somas_action.core import names

State = dict[str, Any]
_DIGEST_KEY = "projection_sha256"


def new_stage_record() -> dict[str, Any]:
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


def _created(state: State, event: dict[str, Any]) -> None:
    data = event["data"]
    pipeline = list(data["pipeline"])
    state.update(
        {
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
            "last_event": None,
        }
    )


def _stage_started(state: State, event: dict[str, Any]) -> None:
    record = state["stages"][event["stage"]]
    record.update(
        status=names.STAGE_IN_PROGRESS,
        attempts=event["attempt"],
        started_at=event["ts"],
        completed_at=None,
        duration_seconds=None,
    )
    state["status"] = names.IN_PROGRESS
    state["metrics"]["attempts"] += 1


def _agent_invoked(state: State, event: dict[str, Any]) -> None:
    state["stages"][event["stage"]]["agent"] = event["data"]["agent"]
    state["metrics"]["agent_calls"] += 1


def _artifacts_written(state: State, event: dict[str, Any]) -> None:
    state["stages"][event["stage"]]["artifacts"] = [a["name"] for a in event["data"]["artifacts"]]


def _gates_evaluated(state: State, event: dict[str, Any]) -> None:
    state["stages"][event["stage"]]["quality_gates"] = event["data"]["results"]


def _attempt_failed(state: State, event: dict[str, Any]) -> None:
    error = event["data"]["error"]
    record = state["stages"][event["stage"]]
    record.update(status=names.STAGE_RETRYING, last_error=error, failures=record["failures"] + 1)
    state["metrics"]["failed_attempts"] += 1
    state["recovery_info"]["last_failure"] = {
        "stage": event["stage"],
        "attempt": event["attempt"],
        "error": error,
        "at": event["ts"],
    }


def _stage_completed(state: State, event: dict[str, Any]) -> None:
    record = state["stages"][event["stage"]]
    record.update(
        status=names.STAGE_COMPLETED,
        completed_at=event["ts"],
        duration_seconds=_seconds_between(record["started_at"], event["ts"]),
        last_error=None,
    )


def _checkpoint(state: State, event: dict[str, Any]) -> None:
    data = event["data"]
    info = state["recovery_info"]
    info["last_successful_checkpoint"] = data["checkpoint_id"]
    info["checkpoints"].append(
        {
            "id": data["checkpoint_id"],
            "stage": event["stage"],
            "seq": event["seq"],
            "created_at": event["ts"],
            "resume_stage": data["resume_stage"],
        }
    )
    info["resume_stage"] = data["resume_stage"]
    info["can_auto_recover"] = True
    info["last_failure"] = None


def _stage_failed(state: State, event: dict[str, Any]) -> None:
    state["stages"][event["stage"]]["status"] = names.STAGE_FAILED
    state["status"] = names.FAILED
    info = state["recovery_info"]
    info["resume_stage"] = event["stage"]
    info["can_auto_recover"] = False


def _dead_letter(state: State, event: dict[str, Any]) -> None:
    state["dead_letter_ids"].append(event["data"]["dead_letter"]["id"])
    state["dead_letter_count"] = len(state["dead_letter_ids"])


def _dead_letters_removed(state: State, event: dict[str, Any]) -> None:
    data = event["data"]
    gone = set(data.get("ids") or [data.get("dead_letter_id")])
    state["dead_letter_ids"] = [i for i in state["dead_letter_ids"] if i not in gone]
    state["dead_letter_count"] = len(state["dead_letter_ids"])
    if event["event_type"] == ev.DEAD_LETTER_RETRIED:
        _rewind(state, event)


def _rewind(state: State, event: dict[str, Any]) -> None:
    """Restart at `to_stage`: it and every later stage start afresh; earlier ones are kept."""
    pipeline = state["pipeline"]
    for stage in pipeline[pipeline.index(event["to_stage"]) :]:
        state["stages"][stage] = new_stage_record()
    state["status"] = names.IN_PROGRESS
    state["human_gate"] = None
    state["pause"] = None
    state["completed_at"] = None
    info = state["recovery_info"]
    info.update(resume_stage=event["to_stage"], can_auto_recover=True, last_failure=None)
    if info.get("parked"):
        info["parked"] = None  # an operator's restart/resume ends the park


def _run_cancelled(state: State, event: dict[str, Any]) -> None:
    """The interrupted attempt does not count: the next run repeats it."""
    record = state["stages"][event["stage"]]
    record.update(status=names.STAGE_RETRYING, attempts=max(event["attempt"] - 1, 0))


def _paused(state: State, event: dict[str, Any]) -> None:
    state["pause"] = {
        "previous_status": state["status"],
        "reason": event["data"].get("reason"),
        "by": event["actor"],
        "at": event["ts"],
    }
    state["status"] = names.PAUSED


def _unpaused(state: State, event: dict[str, Any]) -> None:
    state["status"] = state["pause"]["previous_status"]
    state["pause"] = None


def _cancelled(state: State, event: dict[str, Any]) -> None:
    state["status"] = names.CANCELLED
    state["pause"] = None


def _restored(state: State, event: dict[str, Any]) -> None:
    data = event["data"]["restored"]
    state.update(
        status=data["status"],
        human_gate=data["human_gate"],
        stages=copy.deepcopy(data["stages"]),
        pause=None,
    )
    state["recovery_info"]["resume_stage"] = data["current_stage"]


def _incident(state: State, event: dict[str, Any]) -> None:
    incident = state["incident"]
    if incident is None or incident["status"] == "resolved":
        incident = {
            "status": "open",
            "opened_at": event["ts"],
            "opened_by": event["actor"],
            "notes": 0,
            "resolution": None,
            "resolved_at": None,
        }
    if event["event_type"] == ev.INCIDENT_RESOLVED:
        incident.update(
            status="resolved", resolution=event["data"]["text"], resolved_at=event["ts"]
        )
    else:
        incident["notes"] += 1
    state["incident"] = incident


def _gate_opened(state: State, event: dict[str, Any]) -> None:
    state["stages"][event["stage"]]["status"] = names.STAGE_WAITING
    state["status"] = names.WAITING
    state["human_gate"] = {
        "stage": event["stage"],
        "status": "waiting",
        "opened_at": event["ts"],
        "decided_at": None,
        "decided_by": None,
        "reason": None,
    }


def _gate_decided(state: State, event: dict[str, Any]) -> None:
    gate = state["human_gate"]
    gate.update(
        status="approved" if event["event_type"] == ev.HUMAN_GATE_APPROVED else "rejected",
        decided_at=event["ts"],
        decided_by=event["actor"],
        reason=event["data"].get("reason"),
    )
    state["status"] = names.IN_PROGRESS
    if event["event_type"] == ev.HUMAN_GATE_REJECTED:
        pipeline = state["pipeline"]
        for stage in pipeline[pipeline.index(event["to_stage"]) :]:
            state["stages"][stage] = new_stage_record()
        state["recovery_info"]["resume_stage"] = event["to_stage"]


def _project_completed(state: State, event: dict[str, Any]) -> None:
    state["status"] = names.COMPLETED
    state["completed_at"] = event["ts"]
    state["human_gate"] = None


def _state_edit(state: State, event: dict[str, Any]) -> None:
    changes = event["data"]["changes"]
    for key in ("status", "current_stage"):
        if key in changes:
            state[key] = changes[key]
    for stage, fields in changes.get("stages", {}).items():
        state["stages"][stage].update(fields)


_HANDLERS: dict[str, Callable[[State, dict[str, Any]], None]] = {
    ev.PROJECT_CREATED: _created,
    ev.STAGE_STARTED: _stage_started,
    ev.AGENT_INVOKED: _agent_invoked,
    ev.AGENT_OUTPUT_ACCEPTED: lambda state, event: None,
    ev.ARTIFACTS_WRITTEN: _artifacts_written,
    ev.QUALITY_GATES_EVALUATED: _gates_evaluated,
    ev.STAGE_ATTEMPT_FAILED: _attempt_failed,
    ev.STAGE_COMPLETED: _stage_completed,
    ev.CHECKPOINT_CREATED: _checkpoint,
    ev.STAGE_FAILED: _stage_failed,
    ev.DEAD_LETTER_RECORDED: _dead_letter,
    ev.HUMAN_GATE_OPENED: _gate_opened,
    ev.HUMAN_GATE_APPROVED: _gate_decided,
    ev.HUMAN_GATE_REJECTED: _gate_decided,
    ev.PROJECT_COMPLETED: _project_completed,
    ev.STATE_EDIT_RECORDED: _state_edit,
    ev.PROJECT_PAUSED: _paused,
    ev.PROJECT_UNPAUSED: _unpaused,
    ev.PROJECT_CANCELLED: _cancelled,
    ev.STAGE_RESTARTED: _rewind,
    ev.PROJECT_RESUMED: _rewind,
    ev.STATE_RESTORED: _restored,
    ev.PROJECT_RESET: _cancelled,
    ev.DEAD_LETTER_RETRIED: _dead_letters_removed,
    ev.DEAD_LETTERS_PURGED: _dead_letters_removed,
    ev.INCIDENT_NOTED: _incident,
    ev.INCIDENT_RESOLVED: _incident,
    ev.RUN_CANCELLED: _run_cancelled,
}


# -- resilience: breakers, provider calls, usage, parking, the debugger ---------------------


def _breaker(state: State, event: dict[str, Any]) -> None:
    state["circuit_breakers"][event["data"]["service"]] = event["data"]["breaker"]


def _count(metric: str) -> Callable[[State, dict[str, Any]], None]:
    def handler(state: State, event: dict[str, Any]) -> None:
        metrics = state["metrics"]
        metrics[metric] = metrics.get(metric, 0) + 1
        if event["event_type"] == ev.PROVIDER_CALL_FAILED:
            metrics["http_calls"] = metrics.get("http_calls", 0) + 1

    return handler


def _add_usage(bucket: dict[str, Any], data: dict[str, Any]) -> None:
    bucket["calls"] = bucket.get("calls", 0) + 1
    bucket["input_tokens"] = bucket.get("input_tokens", 0) + data["input_tokens"]
    bucket["output_tokens"] = bucket.get("output_tokens", 0) + data["output_tokens"]
    # Rounded at every step so the fold gives the same bytes however often it is replayed.
    bucket["cost_usd"] = round(bucket.get("cost_usd", 0.0) + data["cost_usd"], 6)


def _usage(state: State, event: dict[str, Any]) -> None:
    data = event["data"]
    metrics = state["metrics"]
    metrics["http_calls"] = metrics.get("http_calls", 0) + 1
    usage = metrics.setdefault("usage", {"by_stage": {}, "by_model": {}})
    _add_usage(usage, data)
    _add_usage(usage["by_stage"].setdefault(event["stage"] or "-", {}), data)
    _add_usage(usage["by_model"].setdefault(f"{data['provider']}/{data['model']}", {}), data)


def _parked(state: State, event: dict[str, Any]) -> None:
    data = event["data"]
    state["status"] = names.PARKED
    info = state["recovery_info"]
    info.update(resume_stage=event["stage"], can_auto_recover=True)
    info["parked"] = {
        "stage": event["stage"],
        "since": event["ts"],
        "reason": data["reason"],
        "kind": data["kind"],
        "services": data["services"],
        "retry_at": data["retry_at"],
    }
    if data["deferred_attempt"]:
        # The attempt could not be made at all; it does not use up one of max_retries.
        record = state["stages"][event["stage"]]
        record["attempts"] = data["deferred_attempt"] - 1
        record["status"] = names.STAGE_RETRYING if record["attempts"] else names.STAGE_PENDING


def _unparked(state: State, event: dict[str, Any]) -> None:
    state["status"] = names.IN_PROGRESS
    state["recovery_info"]["parked"] = None


_HANDLERS.update(
    {
        **{kind: _breaker for kind in ev.CIRCUIT_BREAKER_EVENT_TYPES},
        ev.PROVIDER_CALL_FAILED: _count("provider_errors"),
        ev.PROVIDER_FALLBACK: _count("provider_fallbacks"),
        ev.AGENT_USAGE_RECORDED: _usage,
        ev.AGENT_OUTPUT_REJECTED: _count("invalid_outputs"),
        ev.PROJECT_PARKED: _parked,
        ev.PROJECT_UNPARKED: _unparked,
        ev.DEBUGGER_INVOKED: _count("debugger_runs"),
        ev.DEBUGGER_FIX_COMMITTED: _count("debugger_fixes"),
        ev.DEBUGGER_FAILED: lambda state, event: None,
    }
)


def apply(state: State, event: dict[str, Any]) -> State:
    """Apply one event to `state` in place and return it."""
    handler = _HANDLERS.get(event["event_type"])
    if handler is None:
        raise ValueError(f"unknown event_type {event['event_type']!r} at seq {event['seq']}")
    handler(state, event)
    if event["to_stage"] is not None:
        state["current_stage"] = event["to_stage"]
    command_id = event["data"].get("command_id")
    if command_id:
        state["applied_commands"][command_id] = event["seq"]
    state["updated_at"] = event["ts"]
    state["metrics"]["events"] = event["seq"]
    state["last_event"] = {"seq": event["seq"], "id": event["id"], "hash": event["hash"]}
    return state


def apply_all(state: State | None, events: Iterable[dict[str, Any]]) -> State:
    """Apply events to a copy of `state` (or to an empty state)."""
    result: State = copy.deepcopy(state) if state else {}
    for event in events:
        apply(result, event)
    return result


def fold(events: Iterable[dict[str, Any]]) -> State:
    """The state a log describes."""
    return apply_all(None, events)


def render(state: State) -> str:
    """`state.json` text: pretty JSON ending in a digest of everything above it."""
    body = {k: v for k, v in state.items() if k != _DIGEST_KEY}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return json.dumps({**body, _DIGEST_KEY: digest}, indent=2, ensure_ascii=False) + "\n"


def digest_matches(state: State) -> bool:
    """False when `state.json` was edited after SOMAS wrote it."""
    body = {k: v for k, v in state.items() if k != _DIGEST_KEY}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return state.get(_DIGEST_KEY) == digest


def strip_digest(state: State) -> State:
    """`state` without its digest member."""
    return {k: v for k, v in state.items() if k != _DIGEST_KEY}


def _seconds_between(start: str | None, end: str) -> float | None:
    if start is None:
        return None
    delta = parse_ts(end) - parse_ts(start)
    return round(delta.total_seconds(), 3)


def parse_ts(value: str) -> datetime:
    """Parse our UTC timestamps (`2026-11-28T06:30:00.123Z`)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
