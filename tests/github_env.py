"""Named GitHub scenarios: a repository with a bare `origin`, the Actions environment, delivery."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from somas_action.cli.commands.github import handle_event
from somas_action.core.clock import Clock
from tests import scenarios
from tests.fakes.github_server import TOKEN, FakeGitHub

STATE_BRANCH = "somas/state"
# Test config: no pauses between writes (real runs keep GitHub's advised 1 s).
GITHUB_CONFIG = "\ngithub:\n  min_seconds_between_writes: 0\n"
_deliveries = itertools.count(1)


def repo_with_origin(root: Path, extra_config: str = "") -> Path:
    """A checkout of main whose `origin` is a local bare repository (as in an Actions run)."""
    origin = root / "origin.git"
    origin.mkdir(parents=True)
    scenarios.git(origin, "init", "-q", "--bare", "-b", "main")
    work = scenarios.make_repo(root / "work")
    config = work / ".somas" / "config.yml"
    config.write_text(config.read_text() + GITHUB_CONFIG + extra_config)
    scenarios.git(work, "commit", "-q", "-am", "test settings")
    scenarios.git(work, "remote", "add", "origin", str(origin))
    scenarios.git(work, "push", "-q", "origin", "main")
    return work


def clone(origin: Path, target: Path) -> Path:
    """Another run's fresh checkout of main."""
    scenarios.git(origin.parent, "clone", "-q", str(origin), str(target))
    scenarios.git(target, "config", "user.name", "Test")
    scenarios.git(target, "config", "user.email", "test@example.invalid")
    return target


def actions_env(fake: FakeGitHub, event: str, payload_path: Path, run_id: str) -> dict[str, str]:
    """The variables a GitHub Actions runner sets for a step."""
    return {
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload_path),
        "GITHUB_REPOSITORY": fake.repository,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_REF_NAME": "main",
        "SOMAS_GITHUB_TOKEN": TOKEN,
    }


def deliver(repo: Path, fake: FakeGitHub, clock: Clock, event: str, payload: dict[str, Any]) -> int:
    """Run `somas handle-event` in-process for one event, as a workflow step would."""
    number = next(_deliveries)
    path = repo.parent / f"event-{number}.json"
    path.write_text(json.dumps(payload))
    return handle_event(repo, actions_env(fake, event, path, str(9000 + number)), clock)


def state_log(repo: Path, project_id: str) -> list[str]:
    """Subjects of `git log` of the project folder on origin's state branch (oldest first)."""
    out = scenarios.git(
        repo.parent / "origin.git",
        "log",
        "--reverse",
        "--format=%s",
        STATE_BRANCH,
        "--",
        f".somas/projects/{project_id}/",
    )
    return out.splitlines()


def pipeline_log(repo: Path, project_id: str) -> list[str]:
    """`state_log` without the commits that only record comments as said."""
    return [s for s in state_log(repo, project_id) if not s.endswith("): notification sent")]


# A three-stage pipeline (no code, no test run) for the event tests: fast, with a human gate.
SHORT_PIPELINE = """
version: 1
pipeline:
  retry: {backoff_seconds: 0}
  stages:
    - name: intake
      agent: intake-analyst
      quality_gates: [{type: output_field, field: requirements}]
    - name: review
      agent: reviewer
      human_gate: true
      on_reject: intake
      quality_gates: [{type: verdict, equals: approve}]
    - name: release
      agent: releaser
github:
  min_seconds_between_writes: 0
"""


def short_repo(root: Path) -> Path:
    """`repo_with_origin` with the three-stage pipeline."""
    work = repo_with_origin(root)
    (work / ".somas" / "config.yml").write_text(SHORT_PIPELINE)
    scenarios.git(work, "commit", "-q", "-am", "short pipeline")
    scenarios.git(work, "push", "-q", "origin", "main")
    return work
