"""The whole pipeline on the embedded default: real git, real pytest, recorded agents."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from somas_action.core import names
from somas_action.core.clock import FakeClock
from somas_action.core.domain import Event
from somas_action.core.errors import CommandRefused
from somas_action.state.local_tracker import LocalTracker
from tests import scenarios
from tests.scenarios import demo_output, error, log_of, state_of


@pytest.mark.e2e
def test_demo_recording_runs_to_the_review_gate_then_completes(
    repo: Path, clock: FakeClock
) -> None:
    events: list[Event] = []
    number = scenarios.open_issue(repo)
    run = scenarios.runner(repo, clock, events=events)
    run.start(number, "local:tester")

    state, stop = run.advance("project-1", "local:tester")

    assert state["status"] == "waiting"
    assert state["current_stage"] == "review"
    assert scenarios.gate_of(state)["status"] == "waiting"
    assert "somas approve project-1" in stop.reason
    assert [s for s in names.DEFAULT_STAGES if state["stages"][s]["status"] == "completed"] == [
        "intake",
        "specification",
        "architecture",
        "implementation",
        "validation",
    ]

    run.approve("project-1", "local:alice")
    state, stop = run.advance("project-1", "local:tester")
    # The releaser is told the repository's current version, not one it found in a file.
    [releaser] = [c for c in scenarios.recorded_calls(run) if c.stage == "release"]
    assert releaser.inputs["repository_version"] == {"version": "0.1.0", "source": "pyproject.toml"}

    assert state["status"] == "completed"
    assert all(state["stages"][s]["status"] == "completed" for s in names.DEFAULT_STAGES)
    assert state["human_gate"] is None
    approval = [e for e in log_of(repo) if e["event_type"] == "human_gate_approved"]
    assert [e["actor"] for e in approval] == ["local:alice"]
    assert [e["seq"] for e in events] == list(range(1, len(log_of(repo)) + 1))
    assert scenarios.schema_problems(repo) == []


@pytest.mark.e2e
def test_the_implementer_changes_the_existing_code_on_the_project_branch(
    repo: Path, clock: FakeClock
) -> None:
    scenarios.run_to_gate(repo, clock)

    changed = scenarios.git(repo, "diff", "--name-status", "main...somas/project-1")
    assert changed.splitlines() == ["M\tsrc/slugkit/__init__.py", "M\ttests/test_slugify.py"]
    assert scenarios.git(repo, "log", "-1", "--format=%an %s", "somas/project-1") == (
        "somas[bot] slugify: add max_length, cut at a word boundary"
    )
    module = scenarios.git(repo, "show", "somas/project-1:src/slugkit/__init__.py")
    assert "def slugify(text: str, max_length: int | None = None) -> str:" in module
    # The working tree and main are untouched.
    assert "max_length" not in (repo / "src/slugkit/__init__.py").read_text()
    assert "max_length" not in scenarios.git(repo, "show", "main:src/slugkit/__init__.py")
    implementation = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / "implementation.json").read_text()
    )
    assert implementation["commit"] == scenarios.git(repo, "rev-parse", "somas/project-1")
    assert [f["path"] for f in implementation["files"]] == [
        "src/slugkit/__init__.py",
        "tests/test_slugify.py",
    ]
    pulls = json.loads((repo / ".somas" / "tracker" / "pulls.json").read_text())
    assert [(p["head"], p["base"], p["state"]) for p in pulls] == [
        ("somas/project-1", "main", "open")
    ]


@pytest.mark.e2e
def test_validation_runs_the_whole_suite_on_base_and_branch_in_the_sandbox(
    repo: Path, clock: FakeClock
) -> None:
    run = scenarios.run_to_gate(repo, clock)

    artifacts = scenarios.project_dir(repo) / "artifacts"
    results = json.loads((artifacts / "test_results.json").read_text())
    report = json.loads((artifacts / "validation_report.json").read_text())
    # The suite's 5 cases on main, and the branch's 2 new ones: every test, not the named ones.
    assert (results["total"], results["passed"], results["failed"]) == (7, 7, 0)
    assert (results["base"]["total"], results["base"]["passed"]) == (5, 5)
    assert results["regressions"] == [] and results["verdict"]["passed"] is True
    assert results["added_tests"] == [
        "tests.test_slugify.SlugifyTest.test_max_length_cuts_at_a_word_boundary",
        "tests.test_slugify.SlugifyTest.test_max_length_never_leaves_a_trailing_hyphen",
    ]
    assert results["command"] == "PYTHONPATH=src python3 -m unittest discover -v -s tests -t ."
    assert results["result_source"] == "output"
    assert results["sandbox"]["kind"] in ("bubblewrap", "process-group")
    assert results["commit"] == scenarios.git(repo, "rev-parse", "somas/project-1")
    assert report["status"] == "passed"
    assert report["tests"]["passed"] == 7
    # The validator works without tools: it gets the change and a map of the repository.
    [validator] = [c for c in scenarios.recorded_calls(run) if c.stage == "validation"]
    assert (
        "+    if max_length is None or len(slug) <= max_length:"
        in (validator.inputs["change"]["diff"])
    )
    repository_map = validator.inputs["repository_map"]
    assert "Changes are allowed only under: src/, tests/" in repository_map
    assert "src/slugkit/__init__.py" in repository_map and "def slugify" in repository_map


@pytest.mark.e2e
def test_a_change_that_breaks_existing_tests_fails_with_the_regressions_named(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    broken = demo_output("implementation")
    broken["files"][0]["content"] = broken["files"][0]["content"].replace(
        'strip("-")', 'strip("_")'
    )
    recording = scenarios.make_recording(tmp_path / "rec", implementation=[{"output": broken}])

    scenarios.run_to_gate(repo, clock, recording)

    state = state_of(repo)
    assert state["status"] == "failed"
    assert state["current_stage"] == "validation"
    assert state["stages"]["validation"]["attempts"] == 3
    assert state["stages"]["validation"]["last_error"]["kind"] == "quality_gate"
    assert "no_regressions" in state["stages"]["validation"]["last_error"]["message"]
    results = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / "test_results.json").read_text()
    )
    regressed = {r["test"] for r in results["regressions"]}
    assert "tests.test_slugify.SlugifyTest.test_no_hyphen_at_either_end" in regressed
    assert results["failures"][0]["regression"] is True  # regressions come first
    assert results["total"] == 7 and results["base"]["passed"] == 5
    # The failed project's pull request does not stay open as if it could be merged.
    [pull] = json.loads((repo / ".somas" / "tracker" / "pulls.json").read_text())
    assert pull["state"] == "closed"
    assert "failed at the validation stage" in pull["closed_reason"]
    assert scenarios.schema_problems(repo) == []


@pytest.mark.e2e
def test_validation_agent_failing_three_times_fails_the_project(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec", validation=[error("timeout", "agent timed out")] * 3
    )
    scenarios.run_to_gate(repo, clock, recording)

    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("failed", "validation")
    assert state["stages"]["validation"]["status"] == "failed"
    assert state["recovery_info"]["can_auto_recover"] is False
    # Backoff between attempts on the injected clock: 2 s then 4 s, never a real sleep.
    assert clock.sleeps == [2.0, 4.0]
    letters = json.loads((scenarios.project_dir(repo) / "dead_letters.json").read_text())
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["stage"], letter["agent"], letter["attempt"]) == ("validation", "validator", 3)
    assert letter["error"] == {"kind": "timeout", "message": "agent timed out"}
    assert letter["replay"]["inputs"]["issue"]["title"] == scenarios.DEMO_ISSUE_TITLE
    assert set(letter["replay"]["inputs"]["previous_outputs"]) == {
        "intake",
        "specification",
        "architecture",
        "implementation",
    }
    attempts = [e for e in log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    assert [e["attempt"] for e in attempts] == [1, 2, 3]
    # The runbook's grep finds it.
    found = subprocess.run(
        'grep -l \'"status": "failed"\' .somas/projects/*/state.json',
        shell=True,
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [".somas/projects/project-1/state.json"]
    issue = LocalTracker(repo).record(1)
    assert "somas:failed" in issue["labels"] and "somas:stage:validation" in issue["labels"]
    assert scenarios.schema_problems(repo) == []


@pytest.mark.e2e
def test_a_transient_failure_is_retried_and_recovers(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec",
        intake=[error("transient", "502 from provider"), {"output": demo_output("intake")}],
    )
    scenarios.run_to_gate(repo, clock, recording)

    state = state_of(repo)
    assert state["status"] == "waiting"
    assert state["stages"]["intake"]["attempts"] == 2
    assert state["stages"]["intake"]["last_error"] is None
    assert state["dead_letter_count"] == 0
    assert clock.sleeps == [2.0]


@pytest.mark.e2e
def test_invalid_agent_output_is_a_classified_attempt_failure(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec",
        review=[
            {"output": {"summary": "ok", "verdict": "ship it"}},
            {"output": demo_output("review")},
        ],
    )
    scenarios.run_to_gate(repo, clock, recording)

    failed = [e for e in log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    assert len(failed) == 1
    assert failed[0]["data"]["error"]["kind"] == "invalid_output"
    assert "verdict" in failed[0]["data"]["error"]["message"]
    assert state_of(repo)["status"] == "waiting"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path",
    ["../escape.py", "/etc/passwd", ".git/hooks/pre-commit", ".somas/config.yml", "lib/x.py"],
)
def test_agent_files_outside_the_allowed_paths_are_refused(
    repo: Path, tmp_path: Path, clock: FakeClock, path: str
) -> None:
    hostile = demo_output("implementation")
    hostile["files"].append({"path": path, "content": "print('pwned')\n"})
    recording = scenarios.make_recording(tmp_path / "rec", implementation=[{"output": hostile}])

    scenarios.run_to_gate(repo, clock, recording)

    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("failed", "implementation")
    assert state["stages"]["implementation"]["last_error"]["kind"] == "invalid_output"
    assert scenarios.git(repo, "branch", "--list", "somas/project-1") == ""
    assert not (tmp_path / "escape.py").exists()


@pytest.mark.e2e
def test_reject_sends_the_project_back_for_rework(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    # Structured replies: a recorded tool conversation cannot be replayed on the changed branch.
    recording = scenarios.make_recording(
        tmp_path / "rec", implementation=[{"output": demo_output("implementation")}]
    )
    run = scenarios.run_to_gate(repo, clock, recording)
    state = run.reject("project-1", "local:bob", "please handle emoji")

    assert (state["status"], state["current_stage"]) == ("in_progress", "implementation")
    assert state["stages"]["implementation"]["status"] == "pending"
    assert state["stages"]["architecture"]["status"] == "completed"
    assert scenarios.gate_of(state)["reason"] == "please handle emoji"

    state, _ = run.advance("project-1", "local:tester")
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    implementer_calls = [c for c in scenarios.recorded_calls(run) if c.stage == "implementation"]
    assert implementer_calls[-1].inputs["rejection"]["reason"] == "please handle emoji"


def test_approve_is_refused_when_nothing_waits(repo: Path, clock: FakeClock) -> None:
    number = scenarios.open_issue(repo)
    run = scenarios.runner(repo, clock)
    run.start(number, "local:tester")
    with pytest.raises(CommandRefused, match="not waiting at a human gate"):
        run.approve("project-1", "local:tester")


def test_emergency_stop_refuses_to_advance_and_records_nothing(
    repo: Path, clock: FakeClock
) -> None:
    number = scenarios.open_issue(repo)
    scenarios.runner(repo, clock).start(number, "local:tester")
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text().replace("enabled: true", "enabled: false", 1))
    before = (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes()

    state, stop = scenarios.runner(repo, clock).advance("project-1", "local:tester")

    assert stop.code == 1
    assert "pipeline.enabled is false" in stop.reason and "emergency stop" in stop.reason
    assert state["status"] == "pending"
    assert (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes() == before


def test_starting_the_same_issue_twice_is_a_no_op(repo: Path, clock: FakeClock) -> None:
    number = scenarios.open_issue(repo)
    run = scenarios.runner(repo, clock)
    run.start(number, "local:tester")
    run.start(number, "local:tester")
    assert [e["event_type"] for e in log_of(repo)] == ["project_created"]


@pytest.mark.e2e
def test_labels_and_status_comment_follow_the_state(repo: Path, clock: FakeClock) -> None:
    scenarios.run_to_gate(repo, clock)
    issue = LocalTracker(repo).record(1)
    assert set(issue["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    assert len(issue["comments"]) == 1  # one status comment, edited in place
    body = issue["comments"][0]["body"]
    assert "| validation | ✅ completed | 1 |" in body
    assert "```mermaid" in body and "somas approve project-1" in body


@pytest.mark.e2e
def test_a_test_already_failing_on_the_base_branch_does_not_fail_the_gate(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    (repo / "tests" / "test_known_bug.py").write_text(
        "import unittest\n\n\nclass KnownBugTest(unittest.TestCase):\n"
        "    def test_unicode_dashes(self):\n        self.fail('a known bug, filed as #12')\n"
    )
    scenarios.git(repo, "add", "-A")
    scenarios.git(repo, "commit", "-q", "-m", "a known failing test")

    # Whole files: the recorded conversation's run_tests result would show the known failure.
    recording = scenarios.make_recording(
        tmp_path / "rec", implementation=[{"output": demo_output("implementation")}]
    )
    state = scenarios.run_to_gate(repo, clock, recording).load("project-1", "local:tester")[1]

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    [gate] = state["stages"]["validation"]["quality_gates"]
    assert gate["passed"] is True
    assert gate["detail"] == (
        "7/8 passed, 1 failed, no regressions; the 1 failing already failed on base "
        "(need >= 1 tests)"
    )
