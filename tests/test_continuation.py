"""Long pipelines hand over to continuation runs before the job's time runs out."""

from __future__ import annotations

from pathlib import Path

import pytest

from somas_action.core.clock import FakeClock
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.e2e
ISSUE = 7


def _repo(tmp_path: Path, budget: int, hops: int) -> Path:
    extra = f"error_handling:\n  run_budget_seconds: {budget}\n"
    repo = github_env.repo_with_origin(tmp_path, extra)
    config = repo / ".somas" / "config.yml"
    config.write_text(
        config.read_text().replace(
            "  min_seconds_between_writes: 0\n",
            f"  min_seconds_between_writes: 0\n  max_continuations: {hops}\n",
        )
    )
    scenarios.git(repo, "commit", "-q", "-am", "budget")
    return repo


def test_the_run_budget_hands_over_to_resume_runs_without_losing_work(
    tmp_path: Path, github: FakeGitHub
) -> None:
    clock = FakeClock(step_seconds=1)  # every reading of the time moves it on by a second
    repo = _repo(tmp_path, budget=15, hops=10)
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    labeled = payloads.issue_labeled(github.repository, ISSUE)
    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0

    runs = 1
    while github.dispatches and runs < 12:
        dispatch = github.dispatches.pop(0)
        assert dispatch["workflow"] == "somas-resume.yml"
        assert dispatch["inputs"]["project_id"] == "project-7"
        assert dispatch["inputs"]["hop"] == str(runs)
        assert dispatch["inputs"]["checkpoint_id"].startswith("cp-")
        event = payloads.workflow_dispatch(github.repository, dispatch["inputs"])
        assert github_env.deliver(repo, github, clock, "workflow_dispatch", event) == 0
        runs += 1

    assert runs > 2, "the budget should have needed continuation runs"
    state = scenarios.state_of(repo, "project-7")
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    done = ("intake", "specification", "architecture", "implementation", "validation")
    assert all(state["stages"][s]["status"] == "completed" for s in done)
    # No agent work was repeated: every completed stage took one attempt.
    assert [state["stages"][s]["attempts"] for s in done] == [1] * len(done)


def test_continuations_are_bounded(
    tmp_path: Path, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(step_seconds=1)
    repo = _repo(tmp_path, budget=15, hops=1)
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    labeled = payloads.issue_labeled(github.repository, ISSUE)
    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0
    [dispatch] = github.dispatches
    event = payloads.workflow_dispatch(github.repository, dispatch["inputs"])
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", event) == 1
    assert len(github.dispatches) == 1  # no second hop
    assert "1 continuation runs in a row already" in capsys.readouterr().out
    assert scenarios.state_of(repo, "project-7")["status"] == "parked"
