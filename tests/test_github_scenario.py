"""The whole pipeline driven by GitHub events through the fake GitHub and a real git origin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from somas_action.core.clock import FakeClock
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.e2e
ISSUE = 7
PID = "project-7"


def _bodies(fake: FakeGitHub) -> list[str]:
    return [c["body"] for c in fake.issue_comments(ISSUE)]


def test_label_to_gate_to_approve_to_completion(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    github.add_issue(
        ISSUE, "Add a slugify helper for page URLs", "Page URLs need slugs.", ("somas:project",)
    )
    github.permissions["alice"] = "write"
    labeled = payloads.issue_labeled(github.repository, ISSUE)

    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0

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
        github.repository, ISSUE, "/somas approve", comment_id=comment_id, login="alice"
    )
    assert github_env.deliver(repo, github, clock, "issue_comment", approve) == 0

    assert set(issue["labels"]) == {"somas:project", "somas:completed"}
    assert [content for _, content in github.reactions[comment_id]] == ["eyes", "rocket"]
    bodies = _bodies(github)
    status = [b for b in bodies if b.endswith("<!-- somas:status -->")]
    assert len(status) == 1 and "is **completed**" in status[0] and "```mermaid" in status[0]
    events = [b for b in bodies if "<!-- somas:event:evt-" in b]
    kinds = Counter(b.split("**")[0].strip().split(" ")[0] for b in events)
    # 7 stages completed, 1 gate opened, 1 pipeline completed: one comment each.
    assert len(events) == 9 and kinds["✅"] == 7 and kinds["✋"] == 1 and kinds["🎉"] == 1
    assert len({b.rsplit("<!--", 1)[1] for b in events}) == 9
    assert len(bodies) == 1 + 1 + 9  # the human's command, the status comment, the events

    history = github_env.state_log(repo, PID)
    assert history[0] == "somas(project-7): project created for issue #7"
    assert "somas(project-7): review waiting for approval" in history
    assert any("approved by github:alice" in line for line in history)
    assert history[-1].endswith("project completed")
    log = [
        json.loads(line)
        for line in scenarios.git(
            tmp_path / "origin.git",
            "show",
            f"{github_env.STATE_BRANCH}:.somas/projects/{PID}/transitions.jsonl",
        ).splitlines()
    ]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert log[-1]["event_type"] == "project_completed"

    # API cost: the issue is never re-read (labels come from the payload and from each label
    # write's answer); comments are listed once per run; each run asks the role of whoever
    # triggered it (the label's sender, the commenter) first; 2.5 writes per batch at most,
    # notifications and reactions included.
    reads = [(c.method, c.path) for c in github.log if not c.is_write]
    assert reads == [
        ("GET", "/collaborators/octocat/permission"),
        ("GET", "/issues/7/comments"),
        ("GET", "/pulls"),
        ("GET", "/collaborators/alice/permission"),
        ("GET", "/issues/7/comments"),
    ]
    writes = [c for c in github.log if c.is_write]
    assert len(writes) <= 2.5 * len(history), (len(writes), len(history))
    assert not [c for c in github.log if c.status >= 400]

    # Re-delivering every event changes nothing on GitHub or in the state.
    before = github.snapshot()
    tip = scenarios.git(tmp_path / "origin.git", "rev-parse", github_env.STATE_BRANCH)
    assert github_env.deliver(repo, github, clock, "issues", labeled) == 0
    assert github_env.deliver(repo, github, clock, "issue_comment", approve) == 0
    assert github.snapshot() == before
    assert scenarios.git(tmp_path / "origin.git", "rev-parse", github_env.STATE_BRANCH) == tip
