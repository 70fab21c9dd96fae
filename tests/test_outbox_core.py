"""The notification outbox's pure part: what a batch owes, how it is grouped, how it is settled."""

from __future__ import annotations

from somas_action.config.schemas import first_problem
from somas_action.core import events as ev
from somas_action.core.domain import EventDraft, Notice, State
from somas_action.core.events import EventType
from somas_action.core.outbox import (
    NoticePolicy,
    Outgoing,
    comments_for,
    owed_drafts,
    pending,
    settled_drafts,
)
from somas_action.core.projection import apply_all
from somas_action.pipeline.notifications import comment_body
from tests import scenarios

ALL = frozenset({"stage_completed", "human_gate_opened", "error_occurred", "pipeline_completed"})
POLICY = NoticePolicy(True, ALL, "https://github.example/o/r/actions/runs/9")
PID = "project-3"


def _draft(kind: EventType, stage: str, to_stage: str, index: int, **data: object) -> EventDraft:
    return ev.draft(
        project_id=PID,
        command_id="advance:7",
        index=index,
        ts="2026-01-01T09:00:00.000Z",
        event_type=kind,
        actor="github:alice",
        stage=stage,
        from_stage=stage,
        to_stage=to_stage,
        status="x",
        attempt=1,
        data=dict(data),
    )


def _state() -> State:
    return scenarios.created_state(scenarios.config_section())


def test_a_batch_owes_one_notice_per_notified_event_recorded_with_it() -> None:
    batch = [
        _draft(EventType.STAGE_COMPLETED, "intake", "specification", 0),
        _draft(EventType.CHECKPOINT_CREATED, "intake", "specification", 1),
    ]
    [owed] = owed_drafts(POLICY, batch)
    notice = owed["data"]["notice"]
    assert owed["event_type"] == "notification_owed" and owed["status"] == "owed"
    assert (owed["from_stage"], owed["to_stage"]) == ("specification", "specification")
    assert notice == {
        "id": owed["id"],
        "kind": "stage_completed",
        "event_id": batch[0]["id"],
        "stage": "intake",
        "attempt": 1,
        "next_stage": "specification",
        "error": None,
        "attempts": None,
        "dead_letter": None,
        "run_url": None,
    }
    # Deterministic: the same batch (a redelivered trigger) owes the same notice id.
    assert owed_drafts(POLICY, batch)[0]["id"] == owed["id"]
    # No command id of its own: the outbox never marks a command as applied.
    assert "command_id" not in owed["data"]


def test_a_failure_notice_carries_its_error_dead_letter_and_run() -> None:
    error = {"kind": "permanent", "message": "model said no"}
    batch = [
        _draft(EventType.STAGE_FAILED, "intake", "intake", 0, error=error, attempts=3),
        _draft(EventType.DEAD_LETTER_RECORDED, "intake", "intake", 1, dead_letter={"id": "dl-1"}),
    ]
    [owed] = owed_drafts(POLICY, batch)
    notice = owed["data"]["notice"]
    assert (notice["kind"], notice["error"], notice["attempts"]) == ("error_occurred", error, 3)
    assert (notice["dead_letter"], notice["run_url"]) == ("dl-1", POLICY.run_url)
    body = comment_body(PID, Outgoing("m", (notice,)))
    assert "Dead letter: `dl-1`" in body and "Run: https://github.example/" in body


def test_nothing_is_owed_when_notifications_are_off_or_not_asked_for() -> None:
    batch = [_draft(EventType.HUMAN_GATE_OPENED, "review", "review", 0)]
    assert owed_drafts(NoticePolicy(False, ALL), batch) == []
    assert owed_drafts(NoticePolicy(True, frozenset({"stage_completed"})), batch) == []


def _notices(*kinds: str) -> list[Notice]:
    stages = ["intake", "specification", "architecture", "review", "release"]
    batch = [
        _draft(
            {
                "stage_completed": EventType.STAGE_COMPLETED,
                "human_gate_opened": EventType.HUMAN_GATE_OPENED,
                "pipeline_completed": EventType.PROJECT_COMPLETED,
            }[kind],
            stages[i],
            stages[i + 1] if kind == "stage_completed" else stages[i],
            i,
        )
        for i, kind in enumerate(kinds)
    ]
    return [d["data"]["notice"] for d in owed_drafts(POLICY, batch)]


def test_stage_completions_go_out_together_and_a_gate_alone() -> None:
    notices = _notices("stage_completed", "stage_completed", "stage_completed", "human_gate_opened")
    together, gate = comments_for(notices, one_per_stage=False)
    assert together.notices == tuple(notices[:3]) and gate.notices == (notices[3],)
    assert together.marker == f"somas:event:{notices[0]['event_id']}"
    body = comment_body(PID, together)
    assert body.splitlines()[0] == "✅ 3 stages of `project-3` completed:"
    assert "- **architecture** (attempt 1)\n\nNext: **review**." in body
    assert comment_body(PID, gate).startswith("✋ Stage **review** of `project-3` waits")


def test_one_comment_per_stage_when_the_config_asks() -> None:
    notices = _notices("stage_completed", "stage_completed", "pipeline_completed")
    comments = comments_for(notices, one_per_stage=True)
    assert [c.notices for c in comments] == [(n,) for n in notices]
    assert comment_body(PID, comments[0]) == (
        "✅ Stage **intake** of `project-3` completed (attempt 1); next: **specification**."
    )


def test_the_projection_holds_what_is_owed_until_it_is_said() -> None:
    state = _state()
    assert pending(state) == [] and "outbox" not in state  # old logs fold as before
    batch = [_draft(EventType.STAGE_COMPLETED, "intake", "specification", 0)]
    batch += owed_drafts(POLICY, batch)
    state = apply_all(state, scenarios.sealed(batch, start=2))
    [notice] = pending(state)
    [comment] = comments_for(pending(state), one_per_stage=False)
    said = settled_drafts(state, comment, "2026-01-01T09:01:00.000Z")
    assert said[0]["status"] == "sent"
    assert said[0]["data"] == {"notices": [notice["id"]], "marker": comment.marker, "reason": None}
    state = apply_all(state, scenarios.sealed(said, start=4))
    assert pending(state) == [] and state["outbox"] == []
    # Both events, and the state holding a notice, are what the file schemas describe.
    for event in scenarios.sealed([*batch[1:], *said], start=3):
        assert first_problem("event", {**event, "seq": 3}) is None
    gone = settled_drafts(state, comment, "2026-01-01T09:01:00.000Z", reason="issue #3 was deleted")
    assert gone[0]["status"] == "undeliverable"
