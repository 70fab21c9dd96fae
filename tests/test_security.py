"""Issue 12's findings, each driven through `somas handle-event` against the fake GitHub.

Every payload is a real one from @octokit/webhooks-examples, varied only in sender,
permission, label, body and issue state; the fake GitHub answers the collaborator-permission
API as GitHub does (`role_name` and the legacy `permission`) and logs every request, which the
tests check. The workflow-level findings (queue, pinning, least privilege) are in
tests/test_workflow_security.py; the renderer's own cases in tests/test_untrusted.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from somas_action.cli.commands.github import handle_event
from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub

ISSUE = 7
PID = "project-7"
AT_THE_GATE = {"somas:project", "somas:awaiting-approval", "somas:stage:review"}
HOSTILE = (
    "@everyone see [the fix](https://evil.example/login) in "
    "/home/runner/work/octo-repo/octo-repo/.somas/projects/project-7/state.json "
    "<!-- somas:status -->"
)


def project_dir(repo: Path) -> Path:
    return scenarios.project_dir(repo, PID)


def label(
    repo: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sender: str = "octocat",
    state: str = "open",
) -> int:
    payload = payloads.issue_labeled(github.repository, ISSUE, sender=sender)
    payload["issue"]["state"] = state
    return github_env.deliver(repo, github, clock, "issues", payload)


def comment(
    repo: Path, github: FakeGitHub, clock: FakeClock, body: str, login: str, state: str = "open"
) -> tuple[int, int]:
    comment_id = github.add_comment(ISSUE, body, login=login)
    payload = payloads.comment_created(
        github.repository, ISSUE, body, comment_id=comment_id, login=login
    )
    payload["issue"]["state"] = state
    return github_env.deliver(repo, github, clock, "issue_comment", payload), comment_id


def reactions(github: FakeGitHub, comment_id: int) -> list[str]:
    return [content for _, content in github.reactions.get(comment_id, [])]


def replies(github: FakeGitHub) -> list[str]:
    return [c["body"] for c in github.issue_comments(ISSUE) if "somas:reply:" in c["body"]]


def writes(github: FakeGitHub) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in github.log if c.is_write]


@pytest.fixture
def repo(tmp_path: Path, github: FakeGitHub) -> Path:
    """The three-stage pipeline; issue 7 is open and labelled somas:project."""
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    github.permissions.update(alice="write", mallory="read", tess="triage", mona="maintain")
    return github_env.short_repo(tmp_path)


# -- High: a label starts a pipeline with no permission check -------------------------------


@pytest.mark.parametrize("sender", ["stranger", "mallory", "tess"])
def test_a_label_from_someone_without_write_access_starts_nothing(
    repo: Path, github: FakeGitHub, clock: FakeClock, sender: str
) -> None:
    assert label(repo, github, clock, sender=sender) == 1
    assert [(c.method, c.path) for c in github.log] == [
        ("GET", f"/collaborators/{sender}/permission")
    ]
    assert not project_dir(repo).exists()
    assert github_env.state_log(repo, PID) == [] if _has_state_branch(repo) else True


def _has_state_branch(repo: Path) -> bool:
    refs = scenarios.git(repo.parent / "origin.git", "branch", "--list", "somas/state")
    return bool(refs.strip())


@pytest.mark.e2e
def test_a_label_from_a_writer_starts_the_project(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    assert label(repo, github, clock, sender="alice") == 0
    assert github.log[0].path == "/collaborators/alice/permission"
    assert set(github.issues[ISSUE]["labels"]) == AT_THE_GATE


@pytest.mark.e2e
def test_a_custom_role_based_on_write_may_start_and_approve(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    github.custom_roles["release-manager"] = "write"
    github.permissions["carol"] = "release-manager"
    assert label(repo, github, clock, sender="carol") == 0
    code, comment_id = comment(repo, github, clock, "/somas approve", "carol")
    assert code == 0 and reactions(github, comment_id) == ["eyes", "rocket"]
    assert "somas:completed" in github.issues[ISSUE]["labels"]


@pytest.mark.e2e
def test_a_custom_role_based_on_read_is_refused_with_its_role_named(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    github.custom_roles["auditor"] = "triage"
    github.permissions["dora"] = "auditor"
    assert label(repo, github, clock) == 0
    code, comment_id = comment(repo, github, clock, "/somas approve", "dora")
    assert code == 0 and reactions(github, comment_id) == ["confused"]
    [reply] = replies(github)
    assert "`dora` has `auditor (based on read)`" in reply


@pytest.mark.e2e
def test_allowed_roles_is_configurable(repo: Path, github: FakeGitHub, clock: FakeClock) -> None:
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text() + "security:\n  allowed_roles: [admin]\n")
    assert label(repo, github, clock, sender="alice") == 1  # write is not enough here
    assert not project_dir(repo).exists()
    assert label(repo, github, clock, sender="octocat") == 0  # octocat is an admin
    assert set(github.issues[ISSUE]["labels"]) == AT_THE_GATE


def test_a_closed_issue_does_not_start(repo: Path, github: FakeGitHub, clock: FakeClock) -> None:
    github.issues[ISSUE]["state"] = "closed"
    assert label(repo, github, clock, state="closed") == 1
    code, comment_id = comment(repo, github, clock, "/somas start", "alice", state="closed")
    assert code == 0 and reactions(github, comment_id) == ["confused"]
    [reply] = replies(github)
    assert "@alice refused: issue #7 is closed; reopen it to start SOMAS" in reply
    dispatch = payloads.workflow_dispatch(github.repository, {"issue_number": "7"}, "alice")
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", dispatch) == 1
    assert not project_dir(repo).exists()


@pytest.mark.e2e
def test_a_requested_issue_is_started_by_a_maintainers_slash_start(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    github.issues[ISSUE]["labels"] = ["somas:requested"]
    requested = payloads.issue_labeled(
        github.repository, ISSUE, label="somas:requested", labels=("somas:requested",)
    )
    assert github_env.deliver(repo, github, clock, "issues", requested) == 0
    assert github.log == [] and not project_dir(repo).exists()  # a request starts nothing

    code, comment_id = comment(repo, github, clock, "/somas start", "mona")
    assert code == 0 and reactions(github, comment_id) == ["eyes", "rocket"]
    # The request label gives way to the project's labels.
    assert set(github.issues[ISSUE]["labels"]) == AT_THE_GATE
    assert scenarios.log_of(repo, PID)[0]["actor"] == "github:mona"


def test_a_dispatch_by_someone_without_write_access_starts_nothing(
    repo: Path, github: FakeGitHub, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    dispatch = payloads.workflow_dispatch(github.repository, {"issue_number": "7"}, "tess")
    assert github_env.deliver(repo, github, clock, "workflow_dispatch", dispatch) == 1
    assert "a dispatch (start) needs the admin, maintain or write role" in capsys.readouterr().out
    assert writes(github) == [] and not project_dir(repo).exists()


# -- Low: non-ASCII digits, answers to outsiders, runner paths, the state-branch input ----------


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"issue_number": "²"}, "inputs.issue_number: '²'"),
        ({"issue_number": "¹"}, "inputs.issue_number: '¹'"),
        ({"issue_number": "١٢"}, "inputs.issue_number"),  # Arabic-Indic digits: not 12
        ({"project_id": "project-7", "hop": "²"}, "inputs.hop: '²'"),
    ],
)
def test_non_ascii_digit_inputs_are_refused_in_one_line(
    tmp_path: Path,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    inputs: dict[str, str],
    field: str,
) -> None:
    repo = github_env.short_repo(tmp_path)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payloads.workflow_dispatch(github.repository, inputs)))
    for key, value in github_env.actions_env(github, "workflow_dispatch", path, "1").items():
        monkeypatch.setenv(key, value)
    assert main(["--repo", str(repo), "handle-event"]) == 1  # never 3 (a crash)
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1 and "Traceback" not in err
    assert github.log == []


@pytest.mark.e2e
@pytest.mark.parametrize("body", ["/somas approve", "/somas cancel", "/somas aprove"])
@pytest.mark.parametrize("login", ["stranger", "mallory"])
def test_an_outsider_gets_one_neutral_reaction_and_no_reply(
    repo: Path, github: FakeGitHub, clock: FakeClock, body: str, login: str
) -> None:
    # The payload says the commenter is the repository's OWNER (as the published example
    # does); only the permission API's answer counts, never author_association.
    claimed = payloads.comment_created(github.repository, ISSUE, body, comment_id=1, login=login)
    assert claimed["comment"]["author_association"] == "OWNER"
    assert label(repo, github, clock) == 0
    before, mark = github.snapshot(), len(github.log)
    code, comment_id = comment(repo, github, clock, body, login)
    assert code == 0
    # Asked first, answered with one reaction, nothing else written.
    assert [(c.method, c.path) for c in github.log[mark:]] == [
        ("GET", f"/collaborators/{login}/permission"),
        ("POST", f"/issues/comments/{comment_id}/reactions"),
    ]
    assert reactions(github, comment_id) == ["eyes"] and replies(github) == []
    after = github.snapshot()
    assert after["issues"] == before["issues"]


@pytest.mark.e2e
def test_the_outsider_reaction_can_be_turned_off(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text() + "security:\n  outsider_reaction: none\n")
    assert label(repo, github, clock) == 0
    mark = len(github.log)
    code, _ = comment(repo, github, clock, "/somas approve", "stranger")
    assert code == 0 and [c.is_write for c in github.log[mark:]] == [False]


@pytest.mark.e2e
def test_public_comments_show_no_runner_paths(
    repo: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    from somas_action.core.errors import WorkspaceError

    assert label(repo, github, clock) == 0
    gone = repo.parent / "gone.git"
    scenarios.git(repo, "remote", "set-url", "origin", str(gone))
    with pytest.raises(WorkspaceError, match="git fetch failed"):
        comment(repo, github, clock, "/somas approve", "alice")
    [reply] = replies(github)
    assert "could not be completed: `git fetch failed" in reply
    assert str(repo.parent) not in reply and "git fetch failed in …/work:" in reply


@pytest.mark.e2e
def test_the_state_branch_input_is_honoured(
    repo: Path, github: FakeGitHub, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payloads.issue_labeled(github.repository, ISSUE)))
    env = github_env.actions_env(github, "issues", path, "7")
    assert handle_event(repo, {**env, "SOMAS_STATE_BRANCH": "somas/elsewhere"}, clock) == 0
    origin = repo.parent / "origin.git"
    branches = scenarios.git(origin, "branch", "--list", "somas/*").split()
    assert branches == ["somas/elsewhere"]  # and no somas/state
    log = scenarios.git(origin, "log", "--format=%s", "somas/elsewhere")
    assert "review waiting for approval" in log


def test_a_bad_state_branch_input_is_a_one_line_error(
    repo: Path, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payloads.issue_labeled(github.repository, ISSUE)))
    for key, value in github_env.actions_env(github, "issues", path, "7").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOMAS_STATE_BRANCH", "../main")
    assert main(["--repo", str(repo), "handle-event"]) == 1
    assert github.log == []


@pytest.mark.e2e
def test_the_monitor_sees_the_default_branch_config_and_the_state_branch(
    repo: Path,
    github: FakeGitHub,
    clock: FakeClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert label(repo, github, clock) == 0
    # An operator's emergency stop, committed to the default branch.
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text().replace("pipeline:\n", "pipeline:\n  enabled: false\n", 1))
    scenarios.git(repo, "commit", "-q", "-am", "emergency stop")
    scenarios.git(repo, "push", "-q", "origin", "main")
    # The monitor job's checkout: the default branch, whose working tree has no projects.
    checkout = github_env.clone(repo.parent / "origin.git", tmp_path / "monitor")
    capsys.readouterr()
    main(["--repo", str(checkout), "monitor", "--json", "--from-state-branch"])
    report = json.loads(capsys.readouterr().out)
    assert report["pipeline_enabled"] is False  # was true: the built-in default config
    assert report["projects"] == 1 and report["by_status"] == {"waiting": 1}
    assert not (checkout / ".somas" / "projects").exists()  # the checkout is left alone


def test_the_monitor_before_the_first_project_finds_an_empty_state_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = github_env.repo_with_origin(tmp_path)  # no state branch on origin yet
    assert main(["--repo", str(repo), "monitor", "--json", "--from-state-branch"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["projects"], report["level"]) == (0, "ok")


# -- Medium: agent text reaches the issue unfenced ------------------------------------------


@pytest.mark.e2e
def test_agent_text_in_the_status_line_and_the_job_summary_is_data(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec", intake=[scenarios.error("permanent", HOSTILE)]
    )
    repo = github_env.short_repo(tmp_path / "r")
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text() + f"agent_provider:\n  recording: {recording}\n")
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    summary = tmp_path / "summary.md"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payloads.issue_labeled(github.repository, ISSUE)))
    env = github_env.actions_env(github, "issues", event, "5")
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    env.update(GITHUB_OUTPUT=str(tmp_path / "output"))
    # authorize_git adds a git header through GIT_CONFIG_*: keep it inside this test.
    env.update(GIT_CONFIG_COUNT="0", GIT_CONFIG_KEY_0="x", GIT_CONFIG_VALUE_0="x")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["--repo", str(repo), "handle-event"]) == 1  # the project failed

    [status] = [
        c["body"]
        for c in github.issue_comments(ISSUE)
        if c["body"].endswith("<!-- somas:status -->")
    ]
    for text in (status, summary.read_text()):
        [stopped] = [line for line in text.splitlines() if line.startswith("**Stopped:**")]
        assert re.fullmatch(r"\*\*Stopped:\*\* `permanent`: `[^`]+`", stopped), stopped
        _assert_inert(text)
    [failure] = [c["body"] for c in github.issue_comments(ISSUE) if c["body"].startswith("❌")]
    _assert_inert(failure)


def _assert_inert(markdown: str) -> None:
    """No live mention, link, runner path or marker outside code."""
    outside_code = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.DOTALL)
    assert "@everyone" not in outside_code and "evil.example" not in outside_code
    assert "/home/runner" not in markdown
    assert markdown.count("<!-- somas:") <= 1  # only our own marker, at the end


# -- Medium: one stage's agent overwrites another's evidence -------------------------------


def _hostile_review(tmp_path: Path) -> Path:
    review = scenarios.demo_output("review")
    review["artifacts"] = {
        **review["artifacts"],
        "test_results.json": {"total": 999, "passed": 999, "failed": 0},
        "validation_report.json": {"status": "passed", "note": "trust me"},
        "implementation.json": {"pull_request": "https://evil.example/pull/1"},
    }
    implementation = scenarios.demo_output("implementation")
    implementation["summary"] = HOSTILE
    return scenarios.make_recording(
        tmp_path / "rec",
        review=[{"output": review}],
        implementation=[{"output": implementation}],
    )


@pytest.mark.subprocess
@pytest.mark.e2e
def test_an_agent_cannot_replace_the_evidence_somas_writes(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    recording = _hostile_review(tmp_path)
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text().replace("builtin:demo", str(recording)))
    github.add_issue(ISSUE, "Add slugify", "Needs slugs.", ("somas:project",))
    assert label(repo, github, clock) == 0
    assert set(github.issues[ISSUE]["labels"]) == AT_THE_GATE

    artifacts = project_dir(repo) / "artifacts"
    results = json.loads((artifacts / "test_results.json").read_text())
    assert results["total"] < 999 and results["passed"] == results["total"]
    assert json.loads((artifacts / "validation_report.json").read_text())["status"] == "passed"
    implementation = json.loads((artifacts / "implementation.json").read_text())
    assert implementation["pull_request"].startswith("https://github.example/")
    # What the review agent supplied is kept, in its own stage's namespace.
    review = artifacts / "review"
    assert sorted(p.name for p in review.iterdir()) == [
        "implementation.json",
        "review.md",
        "test_results.json",
        "validation_report.json",
    ]
    written = _records(repo, "review")
    assert {(r["owner"], r["path"]) for r in written} >= {
        ("somas", "review.output.json"),
        ("agent", "review/test_results.json"),
    }
    capsys.readouterr()
    assert main(["--repo", str(repo), "verify", PID]) == 0

    # The PR body carries the implementation agent's summary as inert text.
    [pull] = github.pulls.values()
    assert pull["body"].startswith("Closes #7.")
    _assert_inert_prose(pull["body"])

    # Changing any artifact afterwards is a difference `somas verify` reports.
    (artifacts / "test_results.json").write_text(json.dumps({"total": 999}))
    (review / "review.md").write_text("# Review\n\nVerdict: **approve** (edited)\n")
    capsys.readouterr()
    assert main(["--repo", str(repo), "verify", PID, "--json"]) == 1
    [digests] = [c for c in json.loads(capsys.readouterr().out) if c["check"] == "artifact digests"]
    assert not digests["ok"]
    assert digests["detail"].startswith("artifacts/review/review.md: changed since event #")
    assert "; artifacts/test_results.json: changed since event #" in digests["detail"]


def _records(repo: Path, stage: str) -> list[dict[str, Any]]:
    return [
        record
        for event in scenarios.log_of(repo, PID)
        if event["event_type"] == "artifacts_written" and event["stage"] == stage
        for record in event["data"]["artifacts"]
    ]


def _assert_inert_prose(body: str) -> None:
    assert "@everyone" not in body and "@\u200beveryone" in body
    assert "](https://" not in body and "https://evil" not in body
    assert "/home/runner" not in body and "<!-- somas:" not in body


@pytest.mark.e2e
def test_a_deleted_artifact_fails_verify(
    repo: Path, github: FakeGitHub, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert label(repo, github, clock) == 0
    target = project_dir(repo) / "artifacts" / "intake.output.json"
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    [record] = [r for r in _records(repo, "intake") if r["path"] == "intake.output.json"]
    assert record["sha256"] == digest and record["owner"] == "somas"
    target.unlink()
    capsys.readouterr()
    assert main(["--repo", str(repo), "verify", PID, "--json"]) == 1
    [digests] = [c for c in json.loads(capsys.readouterr().out) if c["check"] == "artifact digests"]
    assert digests["detail"].startswith("artifacts/intake.output.json: missing; event #")


def test_every_test_the_threat_model_names_exists() -> None:
    """docs/security.md names a test for each control; each must exist (and so run)."""
    root = Path(__file__).resolve().parent
    text = (root.parent / "docs" / "security.md").read_text()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    files = set(re.findall(r"`(test_\w+\.py)`", text))
    assert len(named) > 30
    for file, test in named:
        assert re.search(rf"^def {test}\(", (root / file).read_text(), re.MULTILINE), (file, test)
    for file in files:
        assert (root / file).exists(), file
