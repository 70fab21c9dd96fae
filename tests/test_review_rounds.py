"""A reviewer's request_changes: back to implementation with the comments, then forward again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.loader import load_config
from somas_action.core.clock import FakeClock
from somas_action.core.domain import JsonObject
from somas_action.core.ports import AgentRequest
from somas_action.pipeline.runner import Runner, Services
from somas_action.providers.recorded import RecordedProvider
from somas_action.state.local_tracker import LocalTracker
from tests import scenarios
from tests.scenarios import demo_output, log_of, state_of

pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]
COMMENT = "Say in the docstring what happens to a word longer than max_length."
CHANGES: dict[str, Any] = {
    "summary": "The cut inside a single long word is not documented.",
    "verdict": "request_changes",
    "comments": [COMMENT],
    "artifacts": {"review.md": "# Review\n\nVerdict: **request_changes**\n"},
}


class ReviewsInTurn(RecordedProvider):
    """The demo recording, but the reviewer's replies are given in order, one per call."""

    def __init__(self, folder: Path, reviews: list[JsonObject]) -> None:
        super().__init__(folder)
        self.reviews = reviews

    def invoke(self, request: AgentRequest) -> JsonObject:
        if request.stage != "review":
            return super().invoke(request)
        self.calls.append(request)
        return self.reviews.pop(0) if len(self.reviews) > 1 else dict(self.reviews[0])


def runner(repo: Path, tmp_path: Path, clock: FakeClock, reviews: list[JsonObject]) -> Runner:
    # Structured implementer replies: a recorded conversation cannot be replayed on rework.
    recording = scenarios.make_recording(
        tmp_path / "rec", implementation=[{"output": demo_output("implementation")}]
    )
    provider = ReviewsInTurn(recording, reviews)
    tracker = LocalTracker(repo)
    return Runner(Services(repo, load_config(repo), provider, tracker, clock))


def requests(run: Runner, stage: str) -> list[AgentRequest]:
    provider = run.s.provider
    assert isinstance(provider, RecordedProvider)
    return [c for c in provider.calls if c.stage == stage]


def test_request_changes_goes_back_to_implementation_with_the_comments_then_forward(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    run = runner(repo, tmp_path, clock, [CHANGES, demo_output("review")])
    run.start(scenarios.open_issue(repo), "local:tester")

    state, _ = run.advance("project-1", "local:tester")

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    [request] = [e for e in log_of(repo) if e["event_type"] == "review_changes_requested"]
    assert (request["stage"], request["to_stage"], request["status"]) == (
        "review",
        "implementation",
        "request_changes",
    )
    assert request["data"]["comments"] == CHANGES["comments"]
    assert (request["data"]["round"], request["data"]["max_rounds"]) == (1, 3)
    # The second implementation was asked with the reviewer's comments.
    first, second = requests(run, "implementation")
    assert "review_changes" not in first.inputs
    assert second.inputs["review_changes"]["comments"] == CHANGES["comments"]
    # Then forward again: validation ran once more, and the reviewer saw the change.
    started = [e["stage"] for e in log_of(repo) if e["event_type"] == "stage_started"]
    assert started[3:] == ["implementation", "validation", "review", "implementation",
                           "validation", "review"]  # fmt: skip
    review = requests(run, "review")[-1]
    assert "max_length" in review.inputs["change"]["diff"]
    assert review.inputs["test_results"]["regressions"] == []
    assert state.get("changes_requested") is None  # the reviewer approved
    assert state["metrics"].get("review_rounds") == 1
    assert state["dead_letter_count"] == 0
    assert scenarios.schema_problems(repo) == []


def test_a_reviewer_who_keeps_requesting_changes_stops_after_max_retries_rounds(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    run = runner(repo, tmp_path, clock, [CHANGES])
    run.start(scenarios.open_issue(repo), "local:tester")

    state, _ = run.advance("project-1", "local:tester")

    assert (state["status"], state["current_stage"]) == ("failed", "review")
    rounds = [
        e["data"]["round"] for e in log_of(repo) if e["event_type"] == "review_changes_requested"
    ]
    assert rounds == [1, 2, 3]
    error = state["stages"]["review"]["last_error"]
    assert error is not None and error["kind"] == "changes_requested"
    assert "after 3 rounds" in error["message"] and COMMENT in error["message"]
    assert len(requests(run, "implementation")) == 4
    assert len(requests(run, "review")) == 4  # the fourth asked for a fourth round: refused
    [letter] = json.loads((scenarios.project_dir(repo) / "dead_letters.json").read_text())
    assert letter["error"]["kind"] == "changes_requested"
    [pull] = json.loads((repo / ".somas" / "tracker" / "pulls.json").read_text())
    assert pull["state"] == "closed" and "failed at the review stage" in pull["closed_reason"]
    assert state_of(repo)["status"] == "failed"
