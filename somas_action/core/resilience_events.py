"""Pure event drafts for resilience: observations of a call, breaker changes, parking.

Like `engine`, these functions only turn state and facts into event drafts; the runner (or the
breaker mirror) commits them, and `projection` folds them into `state.json`.
"""

from __future__ import annotations

from somas_action.core import names
from somas_action.core.domain import BreakerView, EventDraft, JsonObject, State
from somas_action.core.engine import Batch, Context
from somas_action.core.events import EventType
from somas_action.core.ports import Deferral, Observation


def observation_drafts(
    state: State,
    observations: list[Observation],
    ctx: Context,
    stage: str | None,
    attempt: int | None,
) -> list[EventDraft]:
    """One event per observation a provider made during an agent call, in order."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    for item in observations:
        batch.add(item.event_type, stage=stage, status=item.status, attempt=attempt, data=item.data)
    return batch.drafts


def breaker_drafts(
    state: State, changes: dict[str, tuple[EventType, BreakerView]], ctx: Context
) -> list[EventDraft]:
    """Events that bring `state.circuit_breakers` in line: service -> (event type, view)."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    for service, (event_type, view) in sorted(changes.items()):
        batch.add(
            event_type,
            stage=None,
            status=view["state"],
            data={"service": service, "breaker": view},
        )
    return batch.drafts


def park_drafts(
    state: State, stage: str, deferral: Deferral, deferred_attempt: int | None, ctx: Context
) -> list[EventDraft]:
    """Checkpoint the project and park it until `deferral.retry_at` (nothing is lost).

    `deferred_attempt` is an attempt that was started but could not be made (no provider
    available); it does not count against the stage's `max_retries`.
    """
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    checkpoint_id = names.checkpoint_id(batch.next_seq(state), stage)
    batch.add(
        EventType.CHECKPOINT_CREATED,
        stage=stage,
        status="saved",
        attempt=deferred_attempt,
        data={"checkpoint_id": checkpoint_id, "resume_stage": stage, "reason": "parked"},
    )
    batch.add(
        EventType.PROJECT_PARKED,
        stage=stage,
        status=names.PARKED,
        attempt=deferred_attempt,
        data={
            "reason": deferral.reason,
            "kind": deferral.kind,
            "services": list(deferral.services),
            "retry_at": deferral.retry_at,
            "checkpoint_id": checkpoint_id,
            "deferred_attempt": deferred_attempt,
        },
    )
    return batch.drafts


def unpark_drafts(state: State, ctx: Context) -> list[EventDraft]:
    """The reason for parking has passed: the project is in progress again."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    parked = state["recovery_info"].get("parked")
    batch.add(
        EventType.PROJECT_UNPARKED,
        stage=state["current_stage"],
        status=names.IN_PROGRESS,
        data={"was": parked["reason"] if parked else None},
    )
    return batch.drafts


def debugger_drafts(
    state: State,
    event_type: EventType,
    status: str,
    attempt: int,
    data: JsonObject,
    ctx: Context,
) -> list[EventDraft]:
    """One debugger event for the validation stage."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(event_type, stage=state["current_stage"], status=status, attempt=attempt, data=data)
    return batch.drafts
