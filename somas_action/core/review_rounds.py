"""A reviewer's `request_changes`: back to the stage that makes the change, then forward again.

A stage whose reply says `verdict: request_changes` and whose `on_reject` is an earlier stage
(the review, by default) does not fail its attempt: its reply is accepted and recorded, and the
project goes back to `on_reject` with the reviewer's summary and comments, which that stage's
agent then gets as input. Each request is a round; the stage's `max_retries` bounds the rounds
(counted until the reviewer approves), after which a person decides.
"""

from __future__ import annotations

from somas_action.core.domain import ArtifactRecord, EventDraft, GateResult, JsonObject, State
from somas_action.core.engine import Batch, Context, add_reply_accepted
from somas_action.core.events import EventType
from somas_action.core.settings import StageConfig

REQUEST_CHANGES = "request_changes"


def asks_for_changes(state: State, stage: StageConfig, output: JsonObject) -> bool:
    """Whether the reply requests changes of an earlier stage."""
    if output.get("verdict") != REQUEST_CHANGES or stage.on_reject == stage.name:
        return False
    pipeline = state["pipeline"]
    return stage.on_reject in pipeline[: pipeline.index(stage.name)]


def next_round(state: State, stage: StageConfig) -> int:
    """The number this request would have (1 for the first since the reviewer last approved)."""
    request = state.get("changes_requested")
    previous = request["round"] if request is not None and request["stage"] == stage.name else 0
    return previous + 1


def exhausted_message(stage: StageConfig, output: JsonObject) -> str:
    """Why a request past the last round fails the stage, and what a person can do."""
    comments = "; ".join(str(c) for c in output.get("comments") or [])[:500]
    return (
        f"the {stage.name} agent still requests changes after {stage.max_retries} rounds "
        f"(pipeline.stages[{stage.name}].max_retries): {output['summary']}"
        f"{' — ' + comments if comments else ''}; read the review, then `somas restart "
        f"--stage {stage.on_reject}` with the issue clarified"
    )


def changes_requested(
    state: State,
    stage: StageConfig,
    attempt: int,
    *,
    output: JsonObject,
    output_digest: str,
    artifacts: list[ArtifactRecord],
    gate_results: list[GateResult],
    ctx: Context,
) -> list[EventDraft]:
    """The reply accepted and recorded, then the move back to `on_reject` with the comments."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    add_reply_accepted(
        batch, stage.name, attempt, output_digest, artifacts, gate_results, REQUEST_CHANGES
    )
    batch.add(
        EventType.REVIEW_CHANGES_REQUESTED,
        stage=stage.name,
        status=REQUEST_CHANGES,
        attempt=attempt,
        to_stage=stage.on_reject,
        data={
            "round": next_round(state, stage),
            "max_rounds": stage.max_retries,
            "back_to": stage.on_reject,
            "summary": output["summary"],
            "comments": [str(c) for c in output.get("comments") or []],
        },
    )
    return batch.drafts
