"""The notification outbox through `somas handle-event`, the fake GitHub and a real git origin.

Issue 12 item 6: the state is pushed before anything is said; a failed comment is said by the
next run and never aborts or repeats agent work; a deleted (410) or transferred (301) issue
pauses the project with the reason instead of losing a decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from somas_action.cli.main import main
from somas_action.config.loader import load_config
from somas_action.core import controls, engine
from somas_action.core.clock import FakeClock
from somas_action.core.engine import Stop
from somas_action.core.projection import apply_all, strip_digest
from somas_action.pipeline.outbox import Outbox
from somas_action.state.state_branch import StateBranch
from somas_action.state.store import ProjectStore
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub, Fault

pytestmark = pytest.mark.e2e
ISSUE = 7
PID = "project-7"


def _origin_log(tmp_path: Path) -> list[dict[str, Any]]:
    text = scenarios.git(
        tmp_path / "origin.git",
        "show",
        f"{github_env.STATE_BRANCH}:.somas/projects/{PID}/transitions.jsonl",
    )
    return [json.loads(line) for line in text.splitlines()]


def _label(repo: Path, github: FakeGitHub, clock: FakeClock) -> int:
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    return github_env.deliver(
        repo, github, clock, "issues", payloads.issue_labeled(github.repository, ISSUE)
    )


def _comment(repo: Path, github: FakeGitHub, clock: FakeClock, body: str) -> tuple[int, int]:
    comment_id = github.add_comment(ISSUE, body, login="alice")
    payload = payloads.comment_created(
        github.repository,
        ISSUE,
        body,
        comment_id=comment_id,
        login="alice",
        labels=tuple(github.issues[ISSUE]["labels"]),
    )
    return github_env.deliver(repo, github, clock, "issue_comment", payload), comment_id


def _before_delivery(mocker: MockerFixture, act: Callable[[], None]) -> None:
    """Run `act` once, when the run first turns to saying what it owes (its work is done)."""
    real = Outbox.deliver
    done: list[bool] = []

    def deliver(self: Outbox, state: Any, *, stages_only: bool = False) -> int:
        if not done:
            done.append(True)
            act()
        return real(self, state, stages_only=stages_only)

    mocker.patch.object(Outbox, "deliver", autospec=True, side_effect=deliver)


def _event_comments(github: FakeGitHub) -> list[str]:
    return [c["body"] for c in github.issue_comments(ISSUE) if "<!-- somas:event:" in c["body"]]


def test_each_comment_is_said_only_after_the_state_that_owes_it_is_pushed(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    pushed: list[tuple[int, set[str]]] = []  # (requests GitHub had seen, reported events owed)
    real_push = StateBranch.push

    def push(self: StateBranch) -> None:
        real_push(self)
        owed = {
            e["data"]["notice"]["event_id"]
            for e in _origin_log(tmp_path)
            if e["event_type"] == "notification_owed"
        }
        pushed.append((len(github.log), owed))

    mocker.patch.object(StateBranch, "push", autospec=True, side_effect=push)
    assert _label(repo, github, clock) == 0

    said = [
        (index, call.body["body"])
        for index, call in enumerate(github.log)
        if call.method == "POST" and "<!-- somas:event:" in str(call.body)
    ]
    assert [body.split("\n", 1)[0] for _, body in said] == [
        "✅ Stage **intake** of `project-7` completed (attempt 1); next: **review**.",
        "✋ Stage **review** of `project-7` waits for a human decision.",
    ]
    for index, body in said:
        reported = body.rsplit("somas:event:", 1)[1].split(" ", 1)[0]
        assert any(seen <= index and reported in owed for seen, owed in pushed), body
    # What was said is recorded, and that record is pushed too.
    assert _origin_log(tmp_path)[-1]["event_type"] == "notification_sent"
    assert scenarios.state_of(repo, PID)["outbox"] == []
    # The outbox's events fold like any others: the log rebuilds state.json byte for byte, and
    # `somas verify` finds every file in order.
    store = ProjectStore(repo, PID)
    assert store.reconstruct_text() == (store.dir / "state.json").read_text()
    assert main(["--repo", str(repo), "verify", PID]) == 0


def test_a_failed_comment_is_said_by_the_next_run_and_no_agent_runs_again(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.permissions["alice"] = "write"
    forbidden = {"message": "Resource not accessible by integration", "documentation_url": "x"}
    _before_delivery(
        mocker,
        lambda: github.inject(Fault("POST", r"/issues/7/comments", status=403, body=forbidden)),
    )
    assert _label(repo, github, clock) == 0  # the run is not aborted

    state = scenarios.state_of(repo, PID)
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    [owed] = state["outbox"]
    assert owed["kind"] == "stage_completed" and owed["stage"] == "intake"
    # The state that still owes it is on origin: the next run, on any checkout, will say it.
    assert [n["id"] for n in _origin_state(tmp_path)["outbox"]] == [owed["id"]]
    assert [b.split("\n", 1)[0] for b in _event_comments(github)] == [
        "✋ Stage **review** of `project-7` waits for a human decision."
    ]
    [failed] = [c for c in github.log if c.status >= 400]
    assert (failed.method, failed.path, failed.status) == ("POST", "/issues/7/comments", 403)
    # A 403 could be a moved issue: it was asked, and it is here, so it is a plain failure.
    assert ("GET", "/issues/7") in [(c.method, c.path) for c in github.log]
    calls = state["metrics"]["agent_calls"]

    mocker.stopall()
    code, _ = _comment(repo, github, clock, "/somas status")
    assert code == 0
    state = scenarios.state_of(repo, PID)
    assert state["outbox"] == [] and state["metrics"]["agent_calls"] == calls
    assert [b.split("\n", 1)[0] for b in _event_comments(github)] == [
        "✋ Stage **review** of `project-7` waits for a human decision.",
        "✅ Stage **intake** of `project-7` completed (attempt 1); next: **review**.",
    ]
    [sent] = [e for e in _origin_log(tmp_path)[-1:] if e["event_type"] == "notification_sent"]
    assert sent["data"]["notices"] == [owed["id"]] and sent["status"] == "sent"


def _origin_state(tmp_path: Path) -> dict[str, Any]:
    text = scenarios.git(
        tmp_path / "origin.git",
        "show",
        f"{github_env.STATE_BRANCH}:.somas/projects/{PID}/state.json",
    )
    state: dict[str, Any] = json.loads(text)
    return state


def test_a_deleted_issue_pauses_the_project_at_its_gate_and_loses_nothing(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    _before_delivery(mocker, lambda: github.delete_issue(ISSUE))
    assert _label(repo, github, clock) == 0

    state = _origin_state(tmp_path)
    assert state["status"] == "paused" and state["pause"]["previous_status"] == "waiting"
    assert state["pause"]["reason"].startswith(
        "issue #7 was deleted (GitHub answers 410 Gone); every decision so far is kept on "
        "somas/state. `somas unpause project-7` once the issue is back"
    )
    assert state["human_gate"]["status"] == "waiting"  # the gate is kept, not re-run
    assert len(state["outbox"]) == 2  # owed still: said if the issue comes back
    # One request learnt it; nothing more was sent to the issue.
    after = [c for c in github.log if c.status == 410]
    assert [(c.method, c.path) for c in after] == [("POST", "/issues/7/comments")]
    assert github.log[-1] is after[0]

    # Advancing finds it paused: no agent runs; unpausing brings back the open gate.
    paused = strip_digest(scenarios.state_of(repo, PID))
    step = engine.next_step(paused, load_config(repo))
    assert isinstance(step, Stop) and step.code == 1 and "paused" in step.reason
    drafts = controls.unpause(paused, scenarios.CTX)
    unpaused = apply_all(paused, scenarios.sealed(drafts, start=paused["metrics"]["events"] + 1))
    assert (unpaused["status"], unpaused["human_gate"]) == ("waiting", paused["human_gate"])


def test_a_transferred_issue_pauses_the_project_and_names_where_it_went(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    _before_delivery(mocker, lambda: github.transfer_issue(ISSUE, "other-org/other-repo", 12))
    assert _label(repo, github, clock) == 0

    state = _origin_state(tmp_path)
    assert state["status"] == "paused"
    assert state["pause"]["reason"].startswith(
        "issue #7 was transferred to other-org/other-repo#12 (GitHub answers 301 Moved "
        "Permanently); every decision so far is kept on somas/state."
    )
    # The comment followed the redirect and was refused there; reading the issue showed why.
    trail = [(c.method, c.path, c.status) for c in github.log if c.status in (301, 403)]
    assert trail[:2] == [
        ("POST", "/issues/7/comments", 301),
        ("POST", "/repositories/424242/issues/12/comments", 403),
    ]
    assert ("GET", "/issues/7", 301) in trail


def test_an_approval_survives_the_issue_being_deleted_during_the_run_it_started(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.permissions["alice"] = "write"
    assert _label(repo, github, clock) == 0
    _before_delivery(mocker, lambda: github.delete_issue(ISSUE))
    code, comment_id = _comment(repo, github, clock, "/somas approve")
    assert code == 0

    log = _origin_log(tmp_path)
    kinds = [e["event_type"] for e in scenarios.without_outbox(log)]
    assert "human_gate_approved" in kinds and kinds[-1] == "project_completed"
    # Completed: nothing more will happen, so what could not be said is recorded as such.
    undeliverable = [e for e in log if e["status"] == "undeliverable"]
    assert undeliverable and all(
        e["data"]["reason"] == "issue #7 was deleted (GitHub answers 410 Gone)"
        for e in undeliverable
    )
    assert _origin_state(tmp_path)["outbox"] == []
    assert [content for _, content in github.reactions[comment_id]] == ["eyes"]


def test_one_comment_per_stage_is_said_as_the_next_stage_starts_when_configured(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.short_repo(tmp_path)
    config = repo / ".somas" / "config.yml"
    config.write_text(
        config.read_text() + "monitoring:\n  notifications:\n    comment_per_stage: true\n"
    )
    assert _label(repo, github, clock) == 0
    posts = [
        c.body["body"].split("\n", 1)[0]
        for c in github.log
        if c.method == "POST" and c.path == "/issues/7/comments"
    ]
    # The status comment, then intake's comment before review's agent call, then the gate.
    assert posts == [
        "### SOMAS pipeline: `project-7` is **in_progress**",
        "✅ Stage **intake** of `project-7` completed (attempt 1); next: **review**.",
        "✋ Stage **review** of `project-7` waits for a human decision.",
    ]
    assert scenarios.state_of(repo, PID)["outbox"] == []


def test_a_mirror_write_that_fails_is_sent_by_a_later_flush_and_the_run_goes_on(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.short_repo(tmp_path)
    forbidden = {"message": "Resource not accessible by integration", "documentation_url": "x"}
    github.inject(Fault("POST", r"/issues/7/labels", status=403, body=forbidden))
    assert _label(repo, github, clock) == 0
    # The first wait's label write failed; the run went on and its end wrote what is wanted.
    assert [c.status for c in github.log if c.path == "/issues/7/labels"] == [403, 200]
    assert set(github.issues[ISSUE]["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    assert scenarios.state_of(repo, PID)["status"] == "waiting"
