"""`somas handle-event`: events become commands; refusals are answered and change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import BOT, FakeGitHub

ISSUE = 7


@pytest.fixture
def gated(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> Path:
    """Issue 7 labelled; its project waits at the review gate. alice writes, mallory reads,
    tess triages, mona maintains."""
    repo = github_env.short_repo(tmp_path)
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    github.permissions.update(alice="write", mallory="read", mona="maintain", tess="triage")
    payload = payloads.issue_labeled(github.repository, ISSUE)
    assert github_env.deliver(repo, github, clock, "issues", payload) == 0
    assert set(github.issues[ISSUE]["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    return repo


def comment(
    repo: Path,
    github: FakeGitHub,
    clock: FakeClock,
    body: str,
    login: str,
    kind: str = "User",
    number: int = ISSUE,
) -> tuple[int, int]:
    """Someone comments; the event is delivered. Returns (exit code, comment id)."""
    comment_id = github.add_comment(number, body, login=login, kind=kind)
    payload = payloads.comment_created(
        github.repository, number, body, comment_id=comment_id, login=login, user_type=kind
    )
    return github_env.deliver(repo, github, clock, "issue_comment", payload), comment_id


def log_lines(repo: Path) -> list[str]:
    return (scenarios.project_dir(repo, "project-7") / "transitions.jsonl").read_text().splitlines()


def reply_to(github: FakeGitHub, comment_id: int) -> str:
    replies: list[str] = [
        c["body"]
        for c in github.issue_comments(ISSUE)
        if c["body"].endswith(f"<!-- somas:reply:{comment_id} -->")
    ]
    [reply] = replies
    return reply


def reactions(github: FakeGitHub, comment_id: int) -> list[str]:
    return [content for _, content in github.reactions.get(comment_id, [])]


@pytest.mark.e2e
def test_a_collaborator_without_write_access_is_refused_and_changes_nothing(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    """(Outsiders, who get no reply at all, are in test_security.py.)"""
    before, labels = log_lines(gated), list(github.issues[ISSUE]["labels"])
    code, comment_id = comment(gated, github, clock, "/somas approve", "tess")
    assert code == 0
    assert reactions(github, comment_id) == ["confused"]
    reply = reply_to(github, comment_id)
    assert "@tess refused: `/somas approve` needs the admin, maintain or write role" in reply
    assert "`tess` has `triage`" in reply
    assert log_lines(gated) == before and github.issues[ISSUE]["labels"] == labels
    assert github_env.pipeline_log(gated, "project-7")[-1].endswith("review waiting for approval")


@pytest.mark.e2e
def test_maintain_permission_may_approve(gated: Path, github: FakeGitHub, clock: FakeClock) -> None:
    code, comment_id = comment(gated, github, clock, "/somas approve", "mona")
    assert code == 0 and reactions(github, comment_id) == ["eyes", "rocket"]
    assert "somas:completed" in github.issues[ISSUE]["labels"]


@pytest.mark.e2e
def test_a_malformed_command_is_refused_with_the_grammar(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    before = log_lines(gated)
    code, comment_id = comment(gated, github, clock, "/somas aprove", "alice")
    assert code == 0
    assert reactions(github, comment_id) == ["confused"]
    reply = reply_to(github, comment_id)
    assert "not a valid command: unknown command `aprove`" in reply and "/somas reject" in reply
    assert log_lines(gated) == before


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "login", "kind"),
    [
        ("/somas approve", BOT["login"], "Bot"),  # our own bot, whatever it says
        ("/somas approve", "renovate[bot]", "Bot"),
        ("thanks, looks good", "alice", "User"),
    ],
)
def test_bots_and_conversation_trigger_nothing(
    gated: Path, github: FakeGitHub, clock: FakeClock, body: str, login: str, kind: str
) -> None:
    requests = len(github.log)
    code, _ = comment(gated, github, clock, body, login, kind)
    assert code == 0 and len(github.log) == requests


@pytest.mark.e2e
def test_status_replies_with_the_stage_table(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    code, comment_id = comment(gated, github, clock, "/somas status", "mallory2")
    assert code == 0 and reactions(github, comment_id) == ["eyes"]  # an outsider: no answer
    github.permissions["reader-writer"] = "write"
    code, comment_id = comment(gated, github, clock, "/somas status", "reader-writer")
    reply = reply_to(github, comment_id)
    assert reactions(github, comment_id) == ["eyes", "rocket"]
    assert "status: waiting" in reply and "→ review" in reply


@pytest.mark.e2e
def test_reject_sends_the_project_back_and_runs_it_to_the_gate_again(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    hostile = "not yet <!-- somas:status --> @everyone ```"
    code, comment_id = comment(gated, github, clock, f"/somas reject {hostile}", "alice")
    assert code == 0 and reactions(github, comment_id) == ["eyes", "rocket"]
    events = [json.loads(line) for line in log_lines(gated)]
    [rejected] = [e for e in events if e["event_type"] == "human_gate_rejected"]
    assert rejected["data"]["reason"] == hostile and rejected["actor"] == "github:alice"
    assert scenarios.without_outbox(events)[-1]["event_type"] == "human_gate_opened"
    # The human's comment quoting our marker is left alone; ours is the one status comment.
    status = [c for c in github.issue_comments(ISSUE) if "<!-- somas:status -->" in c["body"]]
    assert [c["user"]["type"] for c in status] == ["Bot", "User"]
    assert status[1]["body"] == f"/somas reject {hostile}"


def events_of(repo: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_lines(repo)]


@pytest.mark.e2e
def test_toolkit_commands_act_through_the_operator(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    code, pause = comment(gated, github, clock, "/somas pause", "alice")
    assert code == 0 and reactions(github, pause) == ["eyes", "rocket"]
    paused = events_of(gated)[-1]
    assert (paused["event_type"], paused["actor"]) == ("project_paused", "github:alice")
    assert paused["data"]["command_id"] == f"comment:{pause}"

    code, _ = comment(gated, github, clock, "/somas unpause", "alice")
    assert code == 0 and events_of(gated)[-1]["event_type"] == "project_unpaused"
    assert scenarios.state_of(gated, "project-7")["status"] == "waiting"

    # restart runs the project from that stage up to the gate again.
    code, _ = comment(gated, github, clock, "/somas restart intake", "alice")
    kinds = [e["event_type"] for e in scenarios.without_outbox(events_of(gated))]
    assert code == 0 and "stage_restarted" in kinds and kinds[-1] == "human_gate_opened"
    state = scenarios.state_of(gated, "project-7")
    assert (state["status"], state["current_stage"]) == ("waiting", "review")

    code, resume = comment(gated, github, clock, "/somas resume cp-9", "alice")
    assert reactions(github, resume) == ["eyes", "confused"]
    assert "unknown checkpoint 'cp-9'; valid checkpoints: cp-" in reply_to(github, resume)

    code, _ = comment(gated, github, clock, "/somas cancel", "alice")
    assert code == 0 and scenarios.state_of(gated, "project-7")["status"] == "cancelled"


@pytest.mark.e2e
def test_a_redelivered_toolkit_comment_changes_nothing(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    code, comment_id = comment(gated, github, clock, "/somas pause", "alice")
    before = log_lines(gated)
    payload = payloads.comment_created(
        github.repository, ISSUE, "/somas pause", comment_id=comment_id, login="alice"
    )
    code = github_env.deliver(gated, github, clock, "issue_comment", payload)  # once more
    assert code == 0 and log_lines(gated) == before


@pytest.mark.e2e
def test_agent_command_dispatches_one_agent_run(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    code, comment_id = comment(
        gated, github, clock, "/somas agent reviewer check the docs\ntoo", "alice"
    )
    assert code == 0 and reactions(github, comment_id) == ["eyes", "rocket"]
    assert github.dispatches == [
        {
            "workflow": "somas-agent.yml",
            "ref": "main",
            "inputs": {
                "project_id": "project-7",
                "agent": "reviewer",
                "stage": "review",
                "instructions": "check the docs\ntoo",
            },
        }
    ]
    code, comment_id = comment(gated, github, clock, "/somas agent nobody do it", "alice")
    assert "unknown agent 'nobody'" in reply_to(github, comment_id)
    assert len(github.dispatches) == 1


@pytest.mark.e2e
def test_a_command_on_an_issue_without_a_project_is_refused(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    github.add_issue(8, "Unrelated", "")
    code, comment_id = comment(gated, github, clock, "/somas approve", "alice", number=8)
    assert code == 0 and reactions(github, comment_id) == ["eyes", "confused"]
    assert not (scenarios.project_dir(gated, "project-8")).exists()


def test_other_labels_and_bot_labels_start_nothing(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.add_issue(3, "x", "", ("bug",))
    assert (
        github_env.deliver(
            repo,
            github,
            clock,
            "issues",
            payloads.issue_labeled(github.repository, 3, label="bug", labels=("bug",)),
        )
        == 0
    )
    assert (
        github_env.deliver(
            repo,
            github,
            clock,
            "issues",
            payloads.issue_labeled(github.repository, 3, sender=BOT["login"], sender_type="Bot"),
        )
        == 0
    )
    assert github.log == [] and not scenarios.project_dir(repo, "project-3").exists()


@pytest.mark.e2e
def test_dispatch_with_an_issue_number_starts_and_redelivery_is_a_no_op(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.add_issue(4, "Fresh start", "", ())
    payload = payloads.workflow_dispatch(github.repository, {"issue_number": "4"})
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", payload) == 0
    assert "somas:awaiting-approval" in github.issues[4]["labels"]
    before = github.snapshot()
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", payload) == 0
    assert github.snapshot() == before


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"issue_number": "0"}, "inputs.issue_number: '0' is not an issue number"),
        ({"project_id": "../../etc"}, "invalid project id '../../etc'"),
        ({"project_id": "project-4", "start_stage": "Review!"}, "inputs.start_stage"),
        ({}, "inputs: give issue_number"),
    ],
)
def test_bad_dispatch_inputs_are_one_line_errors(
    tmp_path: Path,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    inputs: dict[str, str],
    message: str,
) -> None:
    repo = github_env.short_repo(tmp_path)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payloads.workflow_dispatch(github.repository, inputs)))
    for key, value in github_env.actions_env(github, "workflow_dispatch", path, "1").items():
        monkeypatch.setenv(key, value)
    assert main(["--repo", str(repo), "handle-event"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert github.log == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GITHUB_EVENT_NAME: not set"),
        ({"GITHUB_EVENT_NAME": "issues"}, "GITHUB_EVENT_PATH: not set"),
        (
            {"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": "/nonexistent.json"},
            "event payload not found",
        ),
    ],
)
def test_missing_actions_environment_is_a_one_line_error(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["--repo", str(repo), "handle-event"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.e2e
def test_a_restart_dispatch_restarts_from_the_stage(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    """The runbook's `gh workflow run somas-pipeline.yml -f project_id=… -f start_stage=…`."""
    payload = payloads.workflow_dispatch(
        github.repository, {"project_id": "project-7", "start_stage": "intake"}
    )
    assert github_env.deliver(gated, github, clock, "workflow_dispatch", payload) == 0
    events = events_of(gated)
    [restarted] = [e for e in events if e["event_type"] == "stage_restarted"]
    assert restarted["to_stage"] == "intake"
    # ran up to the gate again
    assert scenarios.without_outbox(events)[-1]["event_type"] == "human_gate_opened"


@pytest.mark.e2e
def test_a_long_rate_limit_wait_hands_over_to_a_continuation_run(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fakes.github_server import Fault

    repo = github_env.short_repo(tmp_path)
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    # GitHub runs out of patience for comments after the first stage completes.
    github.inject(
        Fault(
            "POST",
            r"/issues/7/comments",
            status=403,
            times=99,
            headers={
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(clock.now().timestamp()) + 7200),
            },
            body={"message": "API rate limit exceeded", "documentation_url": "x"},
        )
    )
    payload = payloads.issue_labeled(github.repository, ISSUE)
    assert github_env.deliver(repo, github, clock, "issues", payload) == 0
    out = capsys.readouterr().out
    assert "more than this run affords" in out and "continuing in somas-resume.yml" in out
    [dispatch] = github.dispatches
    assert dispatch["workflow"] == "somas-resume.yml" and dispatch["ref"] == "main"
    assert dispatch["inputs"]["project_id"] == "project-7"
    # Nothing recorded was lost: every batch so far is on the state branch.
    history = github_env.state_log(repo, "project-7")
    assert history[0] == "somas(project-7): project created for issue #7"
    checkpoint = dispatch["inputs"]["checkpoint_id"]

    # The continuation run (limit over) carries on from the saved state to the gate.
    github.faults.clear()
    resume = payloads.workflow_dispatch(
        github.repository, {"project_id": "project-7", "checkpoint_id": checkpoint}
    )
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", resume) == 0
    assert set(github.issues[ISSUE]["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    assert len([c for c in github.issue_comments(ISSUE) if "somas:status" in c["body"]]) == 1


@pytest.mark.e2e
def test_a_failed_stage_is_reported_with_its_dead_letter_and_the_run_link(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec",
        intake=[scenarios.error("permanent", "model said <!-- somas:status --> no")],
    )
    repo = github_env.short_repo(tmp_path / "r")
    config = repo / ".somas" / "config.yml"
    config.write_text(
        config.read_text().replace(
            "retry: {backoff_seconds: 0}", "retry: {backoff_seconds: 0}\n  enabled: true"
        )
        + f"agent_provider:\n  recording: {recording}\n"
    )
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    assert (
        github_env.deliver(
            repo, github, clock, "issues", payloads.issue_labeled(github.repository, ISSUE)
        )
        == 1
    )
    assert set(github.issues[ISSUE]["labels"]) == {
        "somas:project",
        "somas:failed",
        "somas:stage:intake",
    }
    [failure] = [c["body"] for c in github.issue_comments(ISSUE) if c["body"].startswith("❌")]
    letter = json.loads(
        (scenarios.project_dir(repo, "project-7") / "dead_letters.json").read_text()
    )
    assert f"Dead letter: `{letter[0]['id']}`" in failure
    assert "Run: https://github.example/octo-org/octo-repo/actions/runs/" in failure
    assert "<! -- somas:status -->" in failure  # untrusted text cannot carry a marker
    assert github_env.pipeline_log(repo, "project-7")[-1].endswith(
        "intake failed for good, dead letter recorded"
    )


@pytest.mark.e2e
def test_a_command_that_breaks_off_says_so_on_the_issue(
    gated: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    from somas_action.core.errors import WorkspaceError

    scenarios.git(gated, "remote", "set-url", "origin", str(gated.parent / "gone.git"))
    with pytest.raises(WorkspaceError, match="git fetch failed"):
        comment(gated, github, clock, "/somas approve", "alice")
    [comment_id] = [c for c in github.comments if github.comments[c]["body"] == "/somas approve"]
    assert reactions(github, comment_id) == ["eyes", "confused"]
    reply = reply_to(github, comment_id)
    assert "`/somas approve` could not be completed: `git fetch failed" in reply
    assert "actions/runs/" in reply
