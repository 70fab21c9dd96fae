"""Operator commands from the runbook as pure decisions: state + command -> event drafts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from somas_action.core import names
from somas_action.core.domain import DeadLetter, EventDraft, JsonObject, State, StateEdit
from somas_action.core.engine import Batch, Context
from somas_action.core.errors import CommandRefused
from somas_action.core.events import EventType, event_id

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
    state: State,
    stage: str,
    reason: str,
    backup: str | None,
    ctx: Context,
    *,
    force: bool = False,
    edit: StateEdit | None = None,
) -> list[EventDraft]:
    """Restart from `stage`: it and later stages start afresh; earlier artifacts are kept.

    Starting past a stage that has not completed (a human gate still waiting, a stage that
    failed, or one never run) would let the project skip it: refused unless `force`, and then
    the skipped stages are recorded. The completed stages a restart discards are recorded too.
    `edit` is the hand edit of state.json this restart was recognised in.
    """
    if stage not in state["pipeline"]:
        raise CommandRefused(
            f"unknown stage {stage!r}; valid stages: {', '.join(state['pipeline'])}"
        )
    if state["status"] == names.CANCELLED:
        raise CommandRefused(f"{state['project_id']} is cancelled; use `somas reset` to start over")
    skipped = skipped_stages(state, stage)
    if skipped and not force:
        listed = ", ".join(f"{name} ({status})" for name, status in skipped)
        raise CommandRefused(
            f"restarting {state['project_id']} at {stage} would skip {listed}; restart at "
            f"{skipped[0][0]} instead, or add --force to skip them (recorded in the log)"
        )
    data: JsonObject = {"reason": reason, "backup": backup, "previous_status": state["status"]}
    if skipped:
        data["skipped"] = [{"stage": name, "status": status} for name, status in skipped]
    discarded = _completed_from(state, stage)
    if discarded:
        data["discarded"] = discarded
    if edit is not None:
        data["by_hand"] = True
        data["edit"] = dict(edit)
    batch = _batch(state, ctx)
    batch.add(
        EventType.STAGE_RESTARTED, stage=stage, status=names.IN_PROGRESS, to_stage=stage, data=data
    )
    return batch.drafts


def skipped_stages(state: State, stage: str) -> list[tuple[str, str]]:
    """Stages before `stage` that have not completed: a restart there would skip them."""
    before = state["pipeline"][: state["pipeline"].index(stage)]
    return [
        (name, state["stages"][name]["status"])
        for name in before
        if state["stages"][name]["status"] != names.STAGE_COMPLETED
    ]


def _completed_from(state: State, stage: str) -> list[str]:
    """Completed stages at and after `stage` (their work is redone after a restart there)."""
    after = state["pipeline"][state["pipeline"].index(stage) :]
    return [name for name in after if state["stages"][name]["status"] == names.STAGE_COMPLETED]


def restart_by_hand(state: State, edit: StateEdit) -> str | None:
    """The stage a hand edit of state.json restarts at (the runbook's manual restart), if any.

    The runbook edits `current_stage` and `status`; an edit that makes the project pending or
    in progress again, or moves it to another stage, is that restart.
    """
    changes = edit["changes"]
    status = changes.get("status", state["status"])
    target = changes.get("current_stage", state["current_stage"])
    if status not in (names.PENDING, names.IN_PROGRESS) or target not in state["pipeline"]:
        return None
    moved = "current_stage" in changes and target != state["current_stage"]
    revived = state["status"] not in (names.PENDING, names.IN_PROGRESS)
    return str(target) if moved or revived else None


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


def retry_dead_letter(
    state: State, letter: DeadLetter, ctx: Context, *, force: bool = False
) -> list[EventDraft]:
    """Take a dead letter off the queue and re-run its stage with the recorded inputs.

    A letter whose stage the project has since moved past (the stage completed, or the project
    is at a later stage) would rewind the project over that later work: refused unless `force`.
    """
    if letter["id"] not in state["dead_letter_ids"]:
        raise CommandRefused(f"dead letter {letter['id']} is not in the queue")
    if state["status"] in (names.CANCELLED, names.COMPLETED):
        raise CommandRefused(f"{state['project_id']} is {state['status']}; nothing to retry")
    stage = letter["stage"]
    moved_on = _moved_past(state, stage)
    if moved_on and not force:
        raise CommandRefused(
            f"{state['project_id']} has moved past {stage} since {letter['id']} was recorded "
            f"(now {state['status']} at {state['current_stage']}); retrying it would redo "
            f"{', '.join(moved_on)}. Add --force to do that, or `somas dead-letters "
            f"{state['project_id']} purge` to drop the letter"
        )
    data: JsonObject = {"dead_letter_id": letter["id"], "replay": letter["replay"]}
    if moved_on:
        data["discarded"] = moved_on
    batch = _batch(state, ctx)
    batch.add(
        EventType.DEAD_LETTER_RETRIED,
        stage=stage,
        status=names.IN_PROGRESS,
        to_stage=stage,
        data=data,
    )
    return batch.drafts


def _moved_past(state: State, stage: str) -> list[str]:
    """The work a rewind to `stage` would undo: completed stages from it on, and any later
    stage the project stands at."""
    pipeline = state["pipeline"]
    if stage not in pipeline:
        return []
    undone = _completed_from(state, stage)
    current = state["current_stage"]
    if pipeline.index(current) > pipeline.index(stage) and current not in undone:
        undone.append(current)
    return undone


def resolve_dead_letters(
    state: State, drafts: list[EventDraft], queued: dict[str, str]
) -> list[EventDraft]:
    """`drafts`, plus `dead_letters_resolved` when they complete a stage with queued letters.

    `queued` maps each queued dead letter's id to its stage. A stage that succeeds after it
    failed for good (a restart or a retry) settles its letters, so the runbook's "process
    recoverable dead letters" never leads back into work already done.
    """
    completed = [d for d in drafts if d["event_type"] == EventType.STAGE_COMPLETED]
    for done in completed:
        ids = [i for i in state["dead_letter_ids"] if queued.get(i) == done["stage"]]
        if not ids:
            continue
        drafts = [
            *drafts,
            {
                **done,
                "id": event_id(state["project_id"], f"{done['id']}:resolved", 0),
                "event_type": EventType.DEAD_LETTERS_RESOLVED,
                "status": "resolved",
                "from_stage": drafts[-1]["to_stage"],
                "to_stage": drafts[-1]["to_stage"],
                "data": {"ids": ids, "stage": done["stage"]},
            },
        ]
    return drafts


def hand_note(state: State, texts: list[str], ctx: Context) -> list[EventDraft]:
    """Lines an operator appended to transitions.jsonl by hand, as the resolution they are."""
    batch = _batch(state, ctx)
    batch.add(
        EventType.INCIDENT_RESOLVED,
        stage=None,
        status="resolved",
        data={"text": "\n".join(texts), "by_hand": True},
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


def git_locks_cleared(
    state: State, cleared: list[tuple[str, float]], ctx: Context
) -> list[EventDraft]:
    """Stale git lock files (left by a killed git of ours) that were removed before a retry."""
    batch = _batch(state, ctx)
    for path, age in cleared:
        batch.add(
            EventType.GIT_LOCK_CLEARED,
            stage=None,
            status="cleared",
            data={"path": path, "age_seconds": age},
        )
    return batch.drafts
