"""The `github_api` breaker wraps every GitHub request (real PyGithub, fake GitHub)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.cli.main import main
from somas_action.config.loader import load_config
from somas_action.core.clock import FakeClock
from somas_action.core.errors import ProviderError
from somas_action.github.api import GitHubApi, GitHubError, GitHubSettings
from somas_action.github.breaker_guard import github_guard
from somas_action.github.tracker import GitHubTracker
from tests import github_env
from tests.fakes.github_server import Fault


def tracker_for(repo: Path, github: Any, clock: FakeClock) -> GitHubTracker:
    config = load_config(repo)
    env = github_env.actions_env(github, "issues", repo / "event.json", "1")
    settings = GitHubSettings.from_env(env, config.github)
    return GitHubTracker(GitHubApi(settings, clock, github_guard(repo, config, clock)))


def test_server_errors_open_the_breaker_then_no_request_is_sent(
    repo: Path, github: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(step_seconds=0)
    github.add_issue(7, "x", "", ("somas:project",))
    github.inject(Fault("GET", r"/issues/7$", status=502, times=100))
    tracker = tracker_for(repo, github, clock)

    with pytest.raises(GitHubError, match="HTTP 502"):
        tracker.get_issue(7)  # 1 try + 3 retries: 4 counted failures
    with pytest.raises((GitHubError, ProviderError)):
        tracker.get_issue(7)  # the 5th failure opens it; then it refuses without a request
    sent = len(github.log)
    assert sent == 5
    with pytest.raises(ProviderError, match="github_api"):
        tracker.get_issue(7)
    assert len(github.log) == sent  # zero calls while open

    breakers = json.loads((repo / ".somas" / "breakers.json").read_text())["services"]
    assert breakers["github_api"]["state"] == "open"
    assert main(["--repo", str(repo), "breaker", "status", "github_api"]) == 0
    assert "open" in capsys.readouterr().out


def test_client_errors_do_not_count(repo: Path, github: Any) -> None:
    clock = FakeClock(step_seconds=0)
    tracker = tracker_for(repo, github, clock)
    for _ in range(6):
        with pytest.raises(GitHubError):
            tracker.get_issue(404)
    breakers_file = repo / ".somas" / "breakers.json"
    data = json.loads(breakers_file.read_text()) if breakers_file.exists() else {"services": {}}
    assert data["services"].get("github_api", {}).get("state", "closed") == "closed"
