"""The notification outbox, pure: what a batch owes the issue, and how owed notices are said.

A comment is owed in the same batch as the event it reports (`notification_owed`), so the
debt is on the state branch before anything is said; it is said after the push, and the
saying is recorded (`notification_sent`). A comment that could not be said stays in
`state.outbox` and a later run says it: nothing is lost and no agent work is repeated.

Stage completions owed together go out as one comment listing them (unless the config asks for
one per stage); a human gate, a failure and completion each always get a comment of their own,
because each asks a person to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from somas_action.core.domain import EventDraft, Notice, State
from somas_action.core.events import EventType, draft, event_id

# `monitoring.notifications.notify_on` name -> the event that reports it.
NOTIFIED_EVENTS = {
    "stage_completed": EventType.STAGE_COMPLETED,
    "human_gate_opened": EventType.HUMAN_GATE_OPENED,
    "error_occurred": EventType.STAGE_FAILED,
    "pipeline_completed": EventType.PROJECT_COMPLETED,
}
_KIND_OF: dict[str, str] = {str(event_type): kind for kind, event_type in NOTIFIED_EVENTS.items()}
STAGE_COMPLETED = "stage_completed"
OWED, SENT, UNDELIVERABLE = "owed", "sent", "undeliverable"
ACTOR = "somas"


@dataclass(frozen=True)
class NoticePolicy:
    """Which events owe the issue a comment, and the run to link from a failure's comment."""

    enabled: bool
    notify_on: frozenset[str]
    run_url: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """One comment to say: the notices it reports and the marker that finds it again."""

    marker: str
    notices: tuple[Notice, ...]

    @property
    def ids(self) -> list[str]:
        """The ids of the notices this comment settles."""
        return [notice["id"] for notice in self.notices]


def event_marker(reported_event_id: str) -> str:
    """The hidden marker of the comment that reports an event (and any listed after it)."""
    return f"somas:event:{reported_event_id}"


def owed_drafts(policy: NoticePolicy, drafts: Sequence[EventDraft]) -> list[EventDraft]:
    """One `notification_owed` draft per notified event of a batch, to append to that batch."""
    if not policy.enabled or not drafts:
        return []
    current = next((d["to_stage"] for d in reversed(drafts) if d["to_stage"]), None)
    owed: list[EventDraft] = []
    for reported in drafts:
        kind = _KIND_OF.get(reported["event_type"])
        if kind is None or kind not in policy.notify_on:
            continue
        command = f"notify:{reported['id']}"
        notice = _notice(kind, reported, drafts, policy.run_url)
        notice["id"] = event_id(reported["project_id"], command, 0)
        owed.append(
            draft(
                project_id=reported["project_id"],
                command_id=command,
                index=0,
                ts=reported["ts"],
                event_type=EventType.NOTIFICATION_OWED,
                actor=reported["actor"],
                stage=reported["stage"],
                from_stage=current,
                to_stage=current,
                status=OWED,
                attempt=reported["attempt"],
                data={"notice": notice},
            )
        )
    return owed


def _notice(
    kind: str, reported: EventDraft, batch: Sequence[EventDraft], run_url: str | None
) -> Notice:
    """The facts a comment about `reported` shows (its id is filled in by the caller)."""
    stage, data = reported["stage"], reported["data"]
    failed = kind == "error_occurred"
    letters = [
        d["data"]["dead_letter"]["id"]
        for d in batch
        if d["event_type"] == EventType.DEAD_LETTER_RECORDED and d["stage"] == stage
    ]
    following = reported["to_stage"] if reported["to_stage"] != stage else None
    return {
        "id": "",
        "kind": kind,
        "event_id": reported["id"],
        "stage": stage,
        "attempt": reported["attempt"],
        "next_stage": following if kind == STAGE_COMPLETED else None,
        "error": data.get("error") if failed else None,
        "attempts": data.get("attempts") if failed else None,
        "dead_letter": letters[0] if failed and letters else None,
        "run_url": run_url if failed else None,
    }


def pending(state: State) -> list[Notice]:
    """Notices owed and not yet said, oldest first."""
    return list(state.get("outbox", []))


def comments_for(notices: Sequence[Notice], one_per_stage: bool) -> list[Outgoing]:
    """Owed notices as comments, in order: stage completions together, the rest alone."""
    comments: list[Outgoing] = []
    stages = [n for n in notices if n["kind"] == STAGE_COMPLETED]
    grouped = not one_per_stage and len(stages) > 1
    for notice in notices:
        if grouped and notice["kind"] == STAGE_COMPLETED:
            if notice is stages[0]:
                comments.append(Outgoing(event_marker(notice["event_id"]), tuple(stages)))
            continue
        comments.append(Outgoing(event_marker(notice["event_id"]), (notice,)))
    return comments


def settled_drafts(
    state: State,
    comment: Outgoing,
    ts: str,
    reason: str | None = None,
) -> list[EventDraft]:
    """The `notification_sent` draft for one comment: said, or undeliverable (with the reason)."""
    first = comment.notices[0]["id"]
    current = state["current_stage"]
    return [
        draft(
            project_id=state["project_id"],
            command_id=f"said:{first}",
            index=0,
            ts=ts,
            event_type=EventType.NOTIFICATION_SENT,
            actor=ACTOR,
            stage=None,
            from_stage=current,
            to_stage=current,
            status=SENT if reason is None else UNDELIVERABLE,
            data={
                "notices": comment.ids,
                "marker": comment.marker,
                "reason": reason,
            },
        )
    ]
