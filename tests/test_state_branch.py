"""Project state committed to the state branch with real git, racing runs included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from somas_action.core import events as ev
from somas_action.core.clock import FakeClock
from somas_action.core.events import EventType
from somas_action.state.eventlog import EventLog
from somas_action.state.state_branch import StateBranch, StateConflict, describe_batch
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub

BRANCH = github_env.STATE_BRANCH


SETTINGS = scenarios.config_section().state


def write_project(repo: Path, project_id: str, text: str) -> None:
    folder = scenarios.project_dir(repo, project_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transitions.jsonl").write_text(text)


def tree(origin: Path) -> list[str]:
    return scenarios.git(origin, "ls-tree", "-r", "--name-only", BRANCH).splitlines()


def test_first_publish_creates_the_branch_and_leaves_the_checkout_alone(
    tmp_path: Path, clock: FakeClock
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    head = scenarios.git(repo, "rev-parse", "HEAD")
    branch = StateBranch(repo, clock, SETTINGS)
    assert branch.pull("project-1") is False
    write_project(repo, "project-1", "one\n")
    assert branch.publish("project-1", "somas(project-1): project created") is not None
    assert branch.publish("project-1", "nothing changed") is None
    origin = tmp_path / "origin.git"
    assert tree(origin) == [".somas/projects/project-1/transitions.jsonl"]
    assert scenarios.git(origin, "log", "--format=%an: %s", BRANCH) == (
        "somas[bot]: somas(project-1): project created"
    )
    assert scenarios.git(repo, "rev-parse", "HEAD") == head
    assert scenarios.git(repo, "branch", "--show-current") == "main"
    assert scenarios.git(repo, "diff", "--cached", "--name-only") == ""


def test_a_lost_race_for_another_project_is_rebuilt_and_pushed(
    tmp_path: Path, clock: FakeClock
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    other = github_env.clone(tmp_path / "origin.git", tmp_path / "other")
    mine, theirs = StateBranch(repo, clock, SETTINGS), StateBranch(other, clock, SETTINGS)
    mine.pull("project-1")
    theirs.pull("project-2")
    write_project(repo, "project-1", "one\n")
    write_project(other, "project-2", "two\n")
    theirs.publish("project-2", "somas(project-2): created")
    mine.publish("project-1", "somas(project-1): created")
    assert mine.lost_races == 1
    assert tree(tmp_path / "origin.git") == [
        ".somas/projects/project-1/transitions.jsonl",
        ".somas/projects/project-2/transitions.jsonl",
    ]


def test_another_run_changing_the_same_project_is_a_conflict(
    tmp_path: Path, clock: FakeClock
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    write_project(repo, "project-1", "one\n")
    StateBranch(repo, clock, SETTINGS).publish("project-1", "created")
    other = github_env.clone(tmp_path / "origin.git", tmp_path / "other")
    mine, theirs = StateBranch(repo, clock, SETTINGS), StateBranch(other, clock, SETTINGS)
    mine.pull("project-1")
    theirs.pull("project-1")
    write_project(other, "project-1", "one\ntheirs\n")
    theirs.publish("project-1", "theirs")
    write_project(repo, "project-1", "one\nmine\n")
    with pytest.raises(StateConflict, match="changed on origin/somas/state by another run"):
        mine.publish("project-1", "mine")
    mine.pull("project-1")  # the caller reloads: the branch wins
    assert (scenarios.project_dir(repo, "project-1") / "transitions.jsonl").read_text() == (
        "one\ntheirs\n"
    )


@pytest.mark.e2e
def test_a_conflicting_command_is_re_applied_to_the_new_state(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mocker: MockerFixture
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.add_issue(7, "x", "", ("somas:project",))
    github.permissions.update(alice="write", bob="write")
    github_env.deliver(repo, github, clock, "issues", payloads.issue_labeled(github.repository, 7))
    other = github_env.clone(tmp_path / "origin.git", tmp_path / "other")
    real_pull = StateBranch.pull
    raced: list[bool] = []

    def pull_then_lose_the_race(self: StateBranch, project_id: str) -> bool:
        result = real_pull(self, project_id)
        if self.repo == repo and not raced:
            raced.append(True)  # bob's run approves and finishes first, from another checkout
            cid = github.add_comment(7, "/somas approve", login="bob")
            github_env.deliver(
                other,
                github,
                clock,
                "issue_comment",
                payloads.comment_created(
                    github.repository, 7, "/somas approve", comment_id=cid, login="bob"
                ),
            )
        return result

    # autospec: the stand-in is called exactly as the real method (self, project_id).
    mocker.patch.object(StateBranch, "pull", autospec=True, side_effect=pull_then_lose_the_race)
    cid = github.add_comment(7, "/somas reject too late", login="alice")
    assert (
        github_env.deliver(
            repo,
            github,
            clock,
            "issue_comment",
            payloads.comment_created(
                github.repository, 7, "/somas reject too late", comment_id=cid, login="alice"
            ),
        )
        == 0
    )
    # alice's reject was re-applied to the approved, completed project: refused, nothing lost.
    assert [c for _, c in github.reactions[cid]] == ["eyes", "confused"]
    log = scenarios.git(
        tmp_path / "origin.git", "show", f"{BRANCH}:.somas/projects/project-7/transitions.jsonl"
    )
    kinds = [json.loads(line)["event_type"] for line in log.splitlines()]
    assert kinds.count("human_gate_approved") == 1 and "human_gate_rejected" not in kinds
    # The last thing that happened; then the outbox recorded its two comments as said (the
    # stages completed, the pipeline completed).
    assert [k for k in kinds if not k.startswith("notification_")][-1] == "project_completed"
    assert kinds[-2:] == ["notification_sent", "notification_sent"]


def test_commit_messages_say_what_happened() -> None:
    state = scenarios.created_state(scenarios.config_section(), number=7)
    failed = ev.draft(
        project_id="project-7",
        command_id="cmd",
        index=0,
        ts="2026-01-01T00:00:00.000Z",
        event_type=EventType.STAGE_ATTEMPT_FAILED,
        actor="x",
        stage="validation",
        from_stage="validation",
        to_stage="validation",
        status="failed",
        attempt=2,
        data={"attempts_left": 1},
    )
    assert describe_batch(state, scenarios.sealed([failed])) == (
        "somas(project-7): validation failed (attempt 2/3)"
    )


@pytest.mark.subprocess
def test_ten_concurrent_runs_for_different_projects_lose_and_double_nothing(
    tmp_path: Path, github: FakeGitHub
) -> None:
    work = github_env.short_repo(tmp_path)
    origin = tmp_path / "origin.git"
    count = 10
    processes = []
    for number in range(1, count + 1):
        github.add_issue(number, f"Issue {number}", "", ())
        checkout = work if number == 1 else github_env.clone(origin, tmp_path / f"run-{number}")
        event = tmp_path / f"dispatch-{number}.json"
        event.write_text(
            json.dumps(payloads.workflow_dispatch(github.repository, {"issue_number": str(number)}))
        )
        env = {
            **os.environ,
            **github_env.actions_env(github, "workflow_dispatch", event, str(number)),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "somas_action", "--repo", str(checkout), "handle-event"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    # A wide bound: on a busy 2-core machine the ten runs take ~30 s; pushes that lose races
    # back off with jitter until state.push_deadline_seconds instead of giving up after N.
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * count, "\n".join(outputs)

    final = github_env.clone(origin, tmp_path / "final")
    subjects = scenarios.git(final, "log", "--format=%s", f"origin/{BRANCH}").splitlines()
    for number in range(1, count + 1):
        pid = f"project-{number}"
        StateBranch(final, FakeClock(), SETTINGS).pull(pid)
        events = EventLog(
            scenarios.project_dir(final, pid) / "transitions.jsonl"
        ).read()  # chain verified
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert len({e["id"] for e in events}) == len(events)
        # The gate opened; then every comment owed was said and recorded as said.
        kinds = [e["event_type"] for e in events]
        assert [k for k in kinds if not k.startswith("notification_")][-1] == "human_gate_opened"
        owed = [e["data"]["notice"]["id"] for e in events if e["event_type"] == "notification_owed"]
        said = [
            n
            for e in events
            if e["event_type"] == "notification_sent"
            for n in e["data"]["notices"]
        ]
        assert kinds[-1] == "notification_sent" and sorted(said) == sorted(owed)
        assert sum(f"somas({pid}):" in s for s in subjects) == len(github_env.state_log(work, pid))
        assert len([c for c in github.issue_comments(number) if "somas:status" in c["body"]]) == 1
    # 6 batches per project (created, intake started/completed, review started/gate opened,
    # the comments recorded as said).
    assert len(subjects) == 6 * count
