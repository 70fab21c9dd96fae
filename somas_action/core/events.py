"""Event types and the one constructor every event goes through."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from somas_action.core.domain import EventDraft, JsonObject
from somas_action.core.names import EVENT_SCHEMA_VERSION


class EventType(StrEnum):
    """Every `event_type` the log may hold (`schemas/event.schema.json` lists the same)."""

    PROJECT_CREATED = "project_created"
    STAGE_STARTED = "stage_started"
    AGENT_INVOKED = "agent_invoked"
    AGENT_OUTPUT_ACCEPTED = "agent_output_accepted"
    ARTIFACTS_WRITTEN = "artifacts_written"
    QUALITY_GATES_EVALUATED = "quality_gates_evaluated"
    STAGE_ATTEMPT_FAILED = "stage_attempt_failed"
    STAGE_COMPLETED = "stage_completed"
    CHECKPOINT_CREATED = "checkpoint_created"
    STAGE_FAILED = "stage_failed"
    DEAD_LETTER_RECORDED = "dead_letter_recorded"
    HUMAN_GATE_OPENED = "human_gate_opened"
    HUMAN_GATE_APPROVED = "human_gate_approved"
    HUMAN_GATE_REJECTED = "human_gate_rejected"
    PROJECT_COMPLETED = "project_completed"
    STATE_EDIT_RECORDED = "state_edit_recorded"
    # Operator commands (the operations runbook).
    PROJECT_PAUSED = "project_paused"
    PROJECT_UNPAUSED = "project_unpaused"
    PROJECT_CANCELLED = "project_cancelled"
    STAGE_RESTARTED = "stage_restarted"
    PROJECT_RESUMED = "project_resumed"
    STATE_RESTORED = "state_restored"
    PROJECT_RESET = "project_reset"
    DEAD_LETTER_RETRIED = "dead_letter_retried"
    DEAD_LETTERS_PURGED = "dead_letters_purged"
    # A stage that failed before has completed: its queued dead letters are settled.
    DEAD_LETTERS_RESOLVED = "dead_letters_resolved"
    INCIDENT_NOTED = "incident_noted"
    INCIDENT_RESOLVED = "incident_resolved"
    # The run was cancelled (SIGINT/SIGTERM) in the middle of an attempt.
    RUN_CANCELLED = "run_cancelled"
    # An attempt that will never report: its run was stopped by a control at a safe point (the
    # reply in flight, if any, is kept) or died (recorded by the next run). See engine.abandon.
    STAGE_ATTEMPT_ABANDONED = "stage_attempt_abandoned"
    # A stale git lock file left by a killed git of ours was removed before retrying.
    GIT_LOCK_CLEARED = "git_lock_cleared"
    # Resilience. Every breaker event type contains "circuit_breaker", so the runbook's
    # `grep "circuit_breaker" transitions.jsonl` lists each state change.
    CIRCUIT_BREAKER_OPENED = "circuit_breaker_opened"
    CIRCUIT_BREAKER_HALF_OPENED = "circuit_breaker_half_opened"
    CIRCUIT_BREAKER_CLOSED = "circuit_breaker_closed"
    CIRCUIT_BREAKER_RESET = "circuit_breaker_reset"
    CIRCUIT_BREAKER_TRIPPED = "circuit_breaker_tripped"
    CIRCUIT_BREAKER_SYNCED = "circuit_breaker_synced"
    PROVIDER_CALL_FAILED = "provider_call_failed"
    PROVIDER_FALLBACK = "provider_fallback"
    AGENT_USAGE_RECORDED = "agent_usage_recorded"
    AGENT_OUTPUT_REJECTED = "agent_output_rejected"
    PROJECT_PARKED = "project_parked"
    PROJECT_UNPARKED = "project_unparked"
    DEBUGGER_INVOKED = "debugger_invoked"
    DEBUGGER_FIX_COMMITTED = "debugger_fix_committed"
    DEBUGGER_FAILED = "debugger_failed"
    # Engine providers (a coding-agent CLI as a stage's agent).
    ENGINE_RUN_FINISHED = "engine_run_finished"
    ENGINE_TOOL_CALLED = "engine_tool_called"
    # The notification outbox: a comment the issue is owed (recorded with the event it reports,
    # pushed before anything is said) and its delivery (or why it cannot be delivered).
    NOTIFICATION_OWED = "notification_owed"
    NOTIFICATION_SENT = "notification_sent"
    # The reviewer requested changes: the project goes back to its `on_reject` stage.
    REVIEW_CHANGES_REQUESTED = "review_changes_requested"
    # An agent's tool loop (docs/agents.md): one event per conversation start, model turn and
    # tool call (its full output an artifact), and one when the loop stops or finishes.
    AGENT_CONVERSATION_STARTED = "agent_conversation_started"
    AGENT_TURN_RECORDED = "agent_turn_recorded"
    AGENT_TOOL_CALLED = "agent_tool_called"
    AGENT_LOOP_STOPPED = "agent_loop_stopped"
    AGENT_LOOP_FINISHED = "agent_loop_finished"


EVENT_TYPES: tuple[str, ...] = tuple(EventType)
CIRCUIT_BREAKER_EVENT_TYPES = tuple(t for t in EventType if "circuit_breaker" in t)


def event_id(project_id: str, command_id: str, index: int) -> str:
    """Deterministic id: the same command (trigger) always yields the same event ids."""
    digest = hashlib.sha256(f"{project_id}\n{command_id}\n{index}".encode()).hexdigest()
    return f"evt-{digest[:20]}"


def draft(
    *,
    project_id: str,
    command_id: str,
    index: int,
    ts: str,
    event_type: EventType,
    actor: str,
    stage: str | None,
    from_stage: str | None,
    to_stage: str | None,
    status: str,
    attempt: int | None = None,
    data: JsonObject | None = None,
) -> EventDraft:
    """An event without `seq`, `prev_hash` and `hash` (the log assigns those on append).

    `from_stage`/`to_stage` are the project's current stage before and after the event;
    `status` is the outcome of the event's subject (an attempt, a stage, a gate, the project).
    """
    return {
        "v": EVENT_SCHEMA_VERSION,
        "id": event_id(project_id, command_id, index),
        "ts": ts,
        "project_id": project_id,
        "event_type": event_type,
        "stage": stage,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "status": status,
        "attempt": attempt,
        "actor": actor,
        "data": data or {},
    }
