"""Operator commands from the runbook as pure decisions: state + command -> event drafts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from somas_action.core import names
from somas_action.core.domain import DeadLetter, EventDraft, State
from somas_action.core.engine import Batch, Context
from somas_action.core.errors import CommandRefused
from somas_action.core.events import EventType

ACTIVE_STATUSES = (names.PENDING, names.IN_PROGRESS, names.WAITING, names.PARKED)


def _batch(state: State, ctx: Context) -> Batch:
    return Batch(state["project_id"], state["current_stage"], ctx)


def pause(state: State, reason: str, ctx: Context) -> list[EventDraft]:
    """Stop a project from advancing until it is unpaused."""
    if state["status"] not in ACTIVE_STATUSES and state["status"] != names.FAILED:
        raise CommandRefused(
            f"{state['project_id']} is {state['status']}; only an active or "
            "failed project can be paused"
        )
    batch = _batch(state, ctx)
    batch.add(EventType.PROJECT_PAUSED, stage=None, status=names.PAUSED, data={"reason": reason})
    return batch.drafts


def unpause(state: State, ctx: Context) -> list[EventDraft]:
    """Let a paused project continue where it stood."""
    if state["status"] != names.PAUSED:
        raise CommandRefused(f"{state['project_id']} is {state['status']}, not paused")
    batch = _batch(state, ctx)
    pause = state["pause"]
    previous = pause["previous_status"] if pause else names.IN_PROGRESS
    batch.add(EventType.PROJECT_UNPAUSED, stage=None, status=previous)
    return batch.drafts


def cancel(state: State, reason: str, ctx: Context) -> list[EventDraft]:
    """End a project for good (its files and log stay)."""
    if state["status"] in (names.COMPLETED, names.CANCELLED):
        raise CommandRefused(f"{state['project_id']} is already {state['status']}")
    batch = _batch(state, ctx)
    batch.add(
        EventType.PROJECT_CANCELLED, stage=None, status=names.CANCELLED, data={"reason": reason}
    )
    return batch.drafts


def restart(
    state: State, stage: str, reason: str, backup: str | None, ctx: Context
) -> list[EventDraft]:
    """Restart from `stage`: it and later stages start afresh; earlier artifacts are kept."""
    if stage not in state["pipeline"]:
        raise CommandRefused(
            f"unknown stage {stage!r}; valid stages: {', '.join(state['pipeline'])}"
        )
    if state["status"] == names.CANCELLED:
        raise CommandRefused(f"{state['project_id']} is cancelled; use `somas reset` to start over")
    batch = _batch(state, ctx)
    batch.add(
        EventType.STAGE_RESTARTED,
        stage=stage,
        status=names.IN_PROGRESS,
        to_stage=stage,
        data={"reason": reason, "backup": backup, "previous_status": state["status"]},
    )
    return batch.drafts


def resume(state: State, checkpoint_id: str | None, ctx: Context) -> list[EventDraft]:
    """Resume after a checkpoint (the last successful one unless named)."""
    checkpoints = state["recovery_info"]["checkpoints"]
    if not checkpoints:
        raise CommandRefused(
            f"{state['project_id']} has no checkpoint yet; `somas restart "
            f"{state['project_id']} --stage {state['pipeline'][0]}` starts it over"
        )
    wanted = checkpoint_id or state["recovery_info"]["last_successful_checkpoint"]
    matches = [c for c in checkpoints if c["id"] == wanted]
    if not matches:
        valid = ", ".join(c["id"] for c in checkpoints)
        raise CommandRefused(f"unknown checkpoint {wanted!r}; valid checkpoints: {valid}")
    if state["status"] == names.COMPLETED and checkpoint_id is None:
        raise CommandRefused(f"{state['project_id']} is completed; nothing to resume")
    if state["status"] == names.CANCELLED:
        raise CommandRefused(f"{state['project_id']} is cancelled; use `somas reset` to start over")
    checkpoint = matches[-1]
    batch = _batch(state, ctx)
    batch.add(
        EventType.PROJECT_RESUMED,
        stage=checkpoint["resume_stage"],
        status=names.IN_PROGRESS,
        to_stage=checkpoint["resume_stage"],
        data={"checkpoint_id": checkpoint["id"], "previous_status": state["status"]},
    )
    return batch.drafts


def restore(
    state: State, backup_name: str, backup: Mapping[str, Any], ctx: Context
) -> list[EventDraft]:
    """Bring back a backup's status, stage and stage records; the log keeps everything since."""
    if (
        backup.get("project_id") != state["project_id"]
        or backup.get("pipeline") != state["pipeline"]
    ):
        raise CommandRefused(
            f"{backup_name}: belongs to {backup.get('project_id')!r} with another pipeline; "
            "refusing to restore it here"
        )
    if backup["current_stage"] not in state["pipeline"]:
        raise CommandRefused(f"{backup_name}: current_stage {backup['current_stage']!r} is unknown")
    batch = _batch(state, ctx)
    batch.add(
        EventType.STATE_RESTORED,
        stage=backup["current_stage"],
        status=backup["status"],
        to_stage=backup["current_stage"],
        data={
            "from": backup_name,
            "backup_seq": (backup.get("last_event") or {}).get("seq"),
            "restored": {
                "status": backup["status"],
                "current_stage": backup["current_stage"],
                "human_gate": backup.get("human_gate"),
                "stages": backup["stages"],
            },
        },
    )
    return batch.drafts


def archive(state: State, folder: str, ctx: Context) -> list[EventDraft]:
    """The last event of a project folder that `somas reset` moves aside."""
    batch = _batch(state, ctx)
    batch.add(
        EventType.PROJECT_RESET, stage=None, status=names.CANCELLED, data={"archived_to": folder}
    )
    return batch.drafts


def retry_dead_letter(state: State, letter: DeadLetter, ctx: Context) -> list[EventDraft]:
    """Take a dead letter off the queue and re-run its stage with the recorded inputs."""
    if letter["id"] not in state["dead_letter_ids"]:
        raise CommandRefused(f"dead letter {letter['id']} is not in the queue")
    if state["status"] in (names.CANCELLED, names.COMPLETED):
        raise CommandRefused(f"{state['project_id']} is {state['status']}; nothing to retry")
    batch = _batch(state, ctx)
    batch.add(
        EventType.DEAD_LETTER_RETRIED,
        stage=letter["stage"],
        status=names.IN_PROGRESS,
        to_stage=letter["stage"],
        data={"dead_letter_id": letter["id"], "replay": letter["replay"]},
    )
    return batch.drafts


def purge_dead_letters(
    state: State, ids: list[str], backup: str | None, by_hand: bool, ctx: Context
) -> list[EventDraft]:
    """Record that dead letters left the queue (purged by command or by hand)."""
    batch = _batch(state, ctx)
    batch.add(
        EventType.DEAD_LETTERS_PURGED,
        stage=None,
        status="purged",
        data={"ids": ids, "backup": backup, "by_hand": by_hand},
    )
    return batch.drafts


def incident(state: State, text: str, resolve: bool, ctx: Context) -> list[EventDraft]:
    """The runbook's post-incident step: a note, or the resolution, in the log."""
    if not text.strip():
        raise CommandRefused("--text: say what happened (it goes into the audit log)")
    batch = _batch(state, ctx)
    kind = EventType.INCIDENT_RESOLVED if resolve else EventType.INCIDENT_NOTED
    batch.add(kind, stage=None, status="resolved" if resolve else "noted", data={"text": text})
    return batch.drafts
