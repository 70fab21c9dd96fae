"""A reviewer's `request_changes` in a run: recognised after the gates, recorded as events.

The rules are pure (`core.review_rounds`); this module gives the runner its two steps: turn a
reply into a `ChangesRequested` outcome (or, past the last round, a failure a person decides),
and record that outcome.
"""

from __future__ import annotations

from somas_action.core import review_rounds
from somas_action.core.domain import ArtifactRecord, GateResult, JsonObject, State
from somas_action.core.engine import RunStage, output_digest
from somas_action.core.error_kinds import CHANGES_REQUESTED
from somas_action.core.errors import AttemptFailed
from somas_action.core.settings import StageConfig
from somas_action.pipeline.outcomes import ChangesRequested
from somas_action.pipeline.recorder import Recorder
from somas_action.state.store import ProjectStore


def outcome_for(
    state: State,
    stage: StageConfig,
    output: JsonObject,
    artifacts: list[ArtifactRecord],
    gate_results: list[GateResult],
) -> ChangesRequested | None:
    """The reply's request for changes, if it makes one; past the last round, AttemptFailed."""
    if not review_rounds.asks_for_changes(state, stage, output):
        return None
    if review_rounds.next_round(state, stage) > stage.max_retries:
        raise AttemptFailed(review_rounds.exhausted_message(stage, output), CHANGES_REQUESTED)
    return ChangesRequested(output, artifacts, gate_results)


def record(
    recorder: Recorder,
    store: ProjectStore,
    state: State,
    step: RunStage,
    outcome: ChangesRequested,
    actor: str,
) -> State:
    """Record the accepted review and the move back to the stage that makes the change."""
    ctx = recorder.step_context(actor, state)
    drafts = review_rounds.changes_requested(
        state,
        step.stage,
        step.attempt,
        output=outcome.output,
        output_digest=output_digest(outcome.output),
        artifacts=outcome.artifacts,
        gate_results=outcome.gate_results,
        ctx=ctx,
    )
    return recorder.commit(store, state, drafts)
