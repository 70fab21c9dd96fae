"""The whole pipeline driven by GitHub events through the fake GitHub and a real git origin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from somas_action.core.clock import FakeClock
from somas_action.core.labels import label_specs
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import Call, FakeGitHub

pytestmark = pytest.mark.e2e
ISSUE = 7
PID = "project-7"
STAGES = ("intake", "specification", "architecture", "implementation", "validation", "review")


def _bodies(fake: FakeGitHub) -> list[str]:
    return [c["body"] for c in fake.issue_comments(ISSUE)]


def _label_writes(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.is_write and ("/labels" in c.path or c.path == "/graphql")]


def test_label_to_gate_to_approve_to_completion(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    github.add_labels(label_specs((*STAGES, "release")))  # `somas setup-labels` (install)
    github.add_issue(
        ISSUE, "Add a slugify helper for page URLs", "Page URLs need slugs.", ("somas:project",)
    )
    github.permissions["alice"] = "write"
    labeled = payloads.issue_labeled(github.repository, ISSUE)

    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0
    first_run = len(github.log)

    issue = github.issues[ISSUE]
    assert set(issue["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    [pull] = github.pulls.values()
    assert (pull["head"], pull["base"], pull["state"]) == ("somas/project-7", "main", "open")
    assert pull["body"].startswith("Closes #7.")
    assert scenarios.git(tmp_path / "origin.git", "rev-parse", "--verify", "somas/project-7")

    comment_id = github.add_comment(ISSUE, "/somas approve", login="alice")
    approve = payloads.comment_created(
        github.repository,
        ISSUE,
        "/somas approve",
        comment_id=comment_id,
        login="alice",
        labels=tuple(issue["labels"]),  # GitHub's payload shows the issue's labels
    )
    assert github_env.deliver(repo, github, clock, "issue_comment", approve) == 0

    assert set(issue["labels"]) == {"somas:project", "somas:completed"}
    assert [content for _, content in github.reactions[comment_id]] == ["eyes", "rocket"]
    bodies = _bodies(github)
    status = [b for b in bodies if b.endswith("<!-- somas:status -->")]
    assert len(status) == 1 and "is **completed**" in status[0] and "```mermaid" in status[0]
    events = [b for b in bodies if "<!-- somas:event:evt-" in b]
    # Per run, the stages it completed in one comment; the gate and the completion alone.
    assert [b.split("\n", 1)[0] for b in events] == [
        "✅ 5 stages of `project-7` completed:",
        "✋ Stage **review** of `project-7` waits for a human decision.",
        "✅ 2 stages of `project-7` completed:",
        "🎉 `project-7` completed every stage of the pipeline.",
    ]
    assert "- **validation** (attempt 1)\n\nNext: **review**." in events[0]
    assert len({b.rsplit("<!--", 1)[1] for b in events}) == 4
    assert len(bodies) == 1 + 1 + 4  # the human's command, the status comment, the events

    history = github_env.state_log(repo, PID)
    assert history[0] == "somas(project-7): project created for issue #7"
    assert "somas(project-7): review waiting for approval" in history
    assert any("approved by github:alice" in line for line in history)
    assert github_env.pipeline_log(repo, PID)[-1].endswith("project completed")
    assert history[-1] == "somas(project-7): notification sent"
    log = [
        json.loads(line)
        for line in scenarios.git(
            tmp_path / "origin.git",
            "show",
            f"{github_env.STATE_BRANCH}:.somas/projects/{PID}/transitions.jsonl",
        ).splitlines()
    ]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert scenarios.without_outbox(log)[-1]["event_type"] == "project_completed"
    assert scenarios.state_of(repo, PID)["outbox"] == []

    # API cost (issue 14): 20 writes for the whole pipeline, where each run writes the labels
    # when it starts to work and when it stops (one request each time), the status comment
    # before each agent call and at the end, and its comments once.
    writes = [c for c in github.log if c.is_write]
    assert Counter(f"{c.method} {c.path}" for c in writes) == {
        "POST /issues/7/labels": 1,  # run 1 starts: somas:in-progress
        "POST /graphql": 3,  # gate; run 2 starts; completed (each adds and removes at once)
        "POST /issues/7/comments": 5,  # the status comment; 4 notifications
        f"PATCH /issues/comments/{_status_id(github)}": 8,  # 5 + 1 waits, 2 ends
        f"POST /issues/comments/{comment_id}/reactions": 2,  # 👀 and 🚀
        "POST /pulls": 1,
    }
    assert len(writes) == 20
    # One label request each time the labels change: 2 in the first run, 2 in the second.
    assert [len(_label_writes(run)) for run in (github.log[:first_run], github.log)] == [2, 4]
    # Never an edit that changes nothing: each status edit sends a new text.
    edits = [c.body["body"] for c in writes if c.method == "PATCH"]
    assert len(edits) == len(set(edits))
    # Reads: each run asks the role of whoever triggered it, lists the comments once (the
    # markers) and the repository's labels once (their ids); the issue itself is never read.
    reads = [(c.method, c.path) for c in github.log if not c.is_write]
    assert reads == [
        ("GET", "/collaborators/octocat/permission"),
        ("GET", "/issues/7/comments"),
        ("GET", "/pulls"),
        ("GET", "/labels"),
        ("GET", "/collaborators/alice/permission"),
        ("GET", "/labels"),
        ("GET", "/issues/7/comments"),
    ]
    assert not [c for c in github.log if c.status >= 400]
    assert not github.violations

    # Re-delivering every event changes nothing on GitHub or in the state.
    before = github.snapshot()
    tip = scenarios.git(tmp_path / "origin.git", "rev-parse", github_env.STATE_BRANCH)
    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0
    assert github_env.deliver(repo, github, clock, "issue_comment", approve) == 0
    assert github.snapshot() == before
    assert scenarios.git(tmp_path / "origin.git", "rev-parse", github_env.STATE_BRANCH) == tip


def _status_id(fake: FakeGitHub) -> int:
    [comment] = [c for c in fake.comments.values() if "<!-- somas:status -->" in c["body"]]
    return int(comment["id"])
