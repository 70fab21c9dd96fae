"""The debugger agent: invoked when validation's tests fail, its fix validated again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.core.clock import FakeClock
from tests import scenarios
from tests.scenarios import demo_output, log_of, state_of

pytestmark = pytest.mark.e2e


def _broken() -> dict[str, Any]:
    broken = demo_output("implementation")
    broken["files"][0]["content"] = broken["files"][0]["content"].replace(
        'strip("-")', 'strip("_")'
    )
    return broken


def _recording(tmp_path: Path, *fixes: dict[str, Any]) -> Path:
    folder = scenarios.make_recording(tmp_path / "rec", implementation=[{"output": _broken()}])
    responses = [{"output": fix} for fix in fixes]
    (folder / "validation.debugger.json").write_text(
        json.dumps({"stage": "validation", "agent": "debugger", "responses": responses})
    )
    return folder


def test_a_debugger_fix_is_committed_and_passes_validation(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    fixed = demo_output("implementation")
    fixed["commit_message"] = "Fix slugify: strip dashes, not underscores"
    run = scenarios.run_to_gate(repo, clock, _recording(tmp_path, fixed))

    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert state["stages"]["validation"]["attempts"] == 2
    assert (state["metrics"]["debugger_runs"], state["metrics"]["debugger_fixes"]) == (1, 1)
    kinds = [e["event_type"] for e in log_of(repo) if e["stage"] == "validation"]
    assert kinds[kinds.index("stage_attempt_failed") :][:4] == [
        "stage_attempt_failed",
        "debugger_invoked",
        "debugger_fix_committed",
        "stage_started",
    ]
    invoked = next(e for e in log_of(repo) if e["event_type"] == "debugger_invoked")
    assert invoked["attempt"] == 1
    assert (
        "tests.test_slugify.SlugifyTest.test_no_hyphen_at_either_end"
        in (invoked["data"]["failing_tests"])
    )
    committed = next(e for e in log_of(repo) if e["event_type"] == "debugger_fix_committed")
    assert committed["data"]["commit"] == scenarios.git(repo, "rev-parse", "somas/project-1")
    subjects = scenarios.git(repo, "log", "--format=%an %s", "somas/project-1").splitlines()
    assert subjects[:2] == [
        "somas[bot] Fix slugify: strip dashes, not underscores",
        "somas[bot] slugify: add max_length, cut at a word boundary",
    ]
    request = next(c for c in scenarios.recorded_calls(run) if c.agent == "debugger")
    # The debugger sees the truth: regressions first, the change, and the files they point at.
    regressions = request.inputs["test_results"]["regressions"]
    assert "tests.test_slugify.SlugifyTest.test_no_hyphen_at_either_end" in {
        r["test"] for r in regressions
    }
    assert 'strip("_")' in request.inputs["change"]["diff"]
    files = {f["path"]: f["content"] for f in request.inputs["files"]}
    assert set(files) == {"src/slugkit/__init__.py", "tests/test_slugify.py"}
    assert 'strip("_")' in files["src/slugkit/__init__.py"]
    results = json.loads((scenarios.project_dir(repo) / "artifacts/test_results.json").read_text())
    assert results["failed"] == 0 and results["total"] == 7
    assert clock.sleeps == [2.0]
    assert scenarios.schema_problems(repo) == []


def test_the_debugger_is_bounded_by_the_stage_attempts(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    scenarios.run_to_gate(repo, clock, _recording(tmp_path, _broken()))

    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("failed", "validation")
    assert state["stages"]["validation"]["attempts"] == 3
    invoked = [e["attempt"] for e in log_of(repo) if e["event_type"] == "debugger_invoked"]
    assert invoked == [1, 2]  # between attempts only: none after the last one
    [letter] = json.loads((scenarios.project_dir(repo) / "dead_letters.json").read_text())
    assert letter["error"]["kind"] == "quality_gate"
    traced = [t["event_type"] for t in letter["trace"]]
    assert traced.count("debugger_fix_committed") == 2 and traced.count("stage_started") == 3


def test_without_a_debugger_reply_validation_still_retries(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    recording = scenarios.make_recording(tmp_path / "rec", implementation=[{"output": _broken()}])
    scenarios.run_to_gate(repo, clock, recording)

    failed = [e for e in log_of(repo) if e["event_type"] == "debugger_failed"]
    assert [e["data"]["error"]["kind"] for e in failed] == ["permanent", "permanent"]
    assert "recorded for agent 'validator'" in failed[0]["data"]["error"]["message"]
    assert state_of(repo)["stages"]["validation"]["attempts"] == 3
