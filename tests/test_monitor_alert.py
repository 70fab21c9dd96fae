"""`somas monitor --alert-issue`: one alert issue, updated, closed when all is well."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import github_env, scenarios
from tests.fakes.github_server import FakeGitHub
from tests.scenarios import error


@pytest.fixture
def failed_project(repo: Path, tmp_path: Path) -> Path:
    recording = scenarios.make_recording(tmp_path / "rec", intake=[error("permanent", "no")])
    recent = FakeClock(start=datetime.now(UTC) - timedelta(minutes=10), step_seconds=0.01)
    scenarios.run_to_gate(repo, recent, recording)
    assert scenarios.state_of(repo)["status"] == "failed"
    return repo


@pytest.mark.e2e
def test_one_alert_issue_on_github(
    failed_project: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = github_env.actions_env(github, "schedule", failed_project / "event.json", "77")
    for key, value in {**env, "GITHUB_ACTIONS": "true"}.items():
        monkeypatch.setenv(key, value)

    def alerts() -> list[dict[str, Any]]:
        return [i for i in github.issues.values() if "somas:alert" in i["labels"]]

    assert main(["--repo", str(failed_project), "monitor", "--alert-issue"]) == 1
    assert main(["--repo", str(failed_project), "monitor", "--alert-issue"]) == 1
    [alert] = alerts()
    assert alert["state"] == "open" and alert["title"].startswith("SOMAS monitor: warning")
    assert "`project-1`" in alert["body"] and "failed at intake" in alert["body"]

    assert main(["--repo", str(failed_project), "cancel", "project-1"]) == 0
    assert main(["--repo", str(failed_project), "monitor", "--alert-issue"]) == 0
    [alert] = alerts()
    assert alert["state"] == "closed"


@pytest.mark.e2e
def test_local_alert_issue(failed_project: Path) -> None:
    assert main(["--repo", str(failed_project), "monitor", "--alert-issue"]) == 1
    assert main(["--repo", str(failed_project), "monitor", "--alert-issue"]) == 1
    issues = sorted((failed_project / ".somas" / "tracker" / "issues").glob("*.json"))
    assert len(issues) == 2  # the project's issue and one alert


def test_stop_all_cancels_somas_runs_on_github(
    repo: Path,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The runbook's `gh run list --status in_progress … | xargs gh run cancel`, for SOMAS runs."""
    env = github_env.actions_env(github, "workflow_dispatch", repo / "event.json", "500")
    for key, value in {**env, "GITHUB_ACTIONS": "true"}.items():
        monkeypatch.setenv(key, value)
    running = github.add_run("in_progress", "SOMAS pipeline")
    queued = github.add_run("queued", "SOMAS resume")
    other = github.add_run("in_progress", "CI")
    assert main(["--repo", str(repo), "stop-all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # pure JSON, even inside Actions
    assert sorted(result["runs_cancelled"]) == sorted([str(running), str(queued)])
    assert github.runs[other]["status"] == "in_progress"
