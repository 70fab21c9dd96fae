"""The composite action run step by step as the runner runs it, against the fake GitHub.

One module-wide RUNNER_TEMP: the first job installs SOMAS into its virtualenv (the action
skips the install when the venv already has `somas`), later jobs reuse it, as steps of one
job would. Everything else is per job: event file, output and summary files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests import github_env, scenarios
from tests.fakes import payloads
from tests.fakes.github_server import TOKEN, FakeGitHub
from tests.runner_harness import ROOT, ActionRun, run_action

pytestmark = pytest.mark.e2e
ISSUE = 7
REAL_HOME = os.environ.get("HOME", "/root")  # for pip's cache; read before the test guard runs
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("runner-temp")


def job(
    repo: Path,
    github: FakeGitHub,
    runner_temp: Path,
    event: str,
    payload: dict[str, Any],
    run_id: int,
    command: str = "handle-event",
) -> ActionRun:
    """One workflow job: the event file, the runner's variables, then the action."""
    event_path = runner_temp / f"event-{run_id}.json"
    event_path.write_text(json.dumps(payload))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "RUNNER_", "SOMAS_"))
    }
    env.update(github_env.actions_env(github, event, event_path, str(run_id)))
    env.pop("SOMAS_GITHUB_TOKEN")  # the token comes through the action's input
    env.update(HOME=REAL_HOME, GITHUB_TOKEN=TOKEN, SOMAS_ACTOR="")
    return run_action(ROOT, {"command": command}, env, repo, runner_temp)


def test_label_to_approval_to_completion_through_action_yml(
    tmp_path: Path, github: FakeGitHub, runner_temp: Path
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    github.add_issue(ISSUE, "Add a slugify helper", "Page URLs need slugs.", ("somas:project",))
    github.permissions["alice"] = "write"
    started = time.time()

    run = job(
        repo, github, runner_temp, "issues", payloads.issue_labeled(github.repository, ISSUE), 1
    )

    assert run.code == 0, run.steps[-1].stderr
    assert [s.name for s in run.steps] == [
        "Set up Python for SOMAS",
        "Install SOMAS",
        "Prepare the sandbox for repository code",
        "Run SOMAS",
    ]
    assert run.outputs == {
        "project_id": "project-7",
        "stage": "review",
        "status": "waiting",
        "verdict": "",
    }
    assert "### SOMAS pipeline: `project-7` is **waiting**" in run.summary
    assert "```mermaid" in run.summary
    assert set(github.issues[ISSUE]["labels"]) == {
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    first = next(
        e for e in scenarios.log_of(repo, "project-7") if e["event_type"] == "stage_started"
    )
    first_at = datetime.fromisoformat(first["ts"].replace("Z", "+00:00")).timestamp()
    install = run.steps[1].seconds
    TIMINGS.update(
        job_start_to_first_stage_s=first_at - started,
        install_s=install,
        first_stage_excluding_install_s=first_at - started - install,
    )

    comment_id = github.add_comment(ISSUE, "/somas approve", login="alice")
    approve = payloads.comment_created(
        github.repository, ISSUE, "/somas approve", comment_id=comment_id, login="alice"
    )
    run = job(repo, github, runner_temp, "issue_comment", approve, 2)

    assert run.code == 0, run.steps[-1].stderr
    assert run.outputs == {
        "project_id": "project-7",
        "stage": "release",
        "status": "completed",
        "verdict": "",
    }
    assert set(github.issues[ISSUE]["labels"]) == {"somas:project", "somas:completed"}
    assert [content for _, content in github.reactions[comment_id]] == ["eyes", "rocket"]
    # The state branch on origin holds the history.
    log = scenarios.git(tmp_path / "origin.git", "log", "--oneline", "somas/state")
    assert "project completed" in log
    print(f"HARNESS-TIMINGS {json.dumps(TIMINGS)}")
    # The action's own virtualenv, as the first job installed it.
    venv = runner_temp / "somas-venv"
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file())
    assert size < 200 * 1024 * 1024
    print(f"HARNESS-VENV-MB {size / 1e6:.1f}")


def test_a_refused_command_is_an_annotation_and_no_outputs(
    tmp_path: Path, github: FakeGitHub, runner_temp: Path
) -> None:
    repo = github_env.repo_with_origin(tmp_path)
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    github.permissions["mallory"] = "triage"  # a collaborator, below the allowed roles
    comment_id = github.add_comment(ISSUE, "/somas approve", login="mallory")
    payload = payloads.comment_created(
        github.repository, ISSUE, "/somas approve", comment_id=comment_id, login="mallory"
    )
    run = job(repo, github, runner_temp, "issue_comment", payload, 3)
    assert run.code == 0  # a refusal is an answer on the issue, not a failed job
    assert [content for _, content in github.reactions[comment_id]] == ["confused"]
    assert not (repo / ".somas" / "projects" / "project-7").exists()


def test_a_dispatch_with_issue_number_starts_fresh_through_action_yml(
    tmp_path: Path, github: FakeGitHub, runner_temp: Path
) -> None:
    """The runbook's `gh workflow run somas-pipeline.yml -f issue_number=<n>`."""
    repo = github_env.repo_with_origin(tmp_path)
    github.add_issue(ISSUE, "Add a slugify helper", "Page URLs need slugs.", ())
    payload = payloads.workflow_dispatch(github.repository, {"issue_number": str(ISSUE)})
    run = job(repo, github, runner_temp, "workflow_dispatch", payload, 4)
    assert run.code == 0, run.steps[-1].stderr
    assert run.outputs == {
        "project_id": "project-7",
        "stage": "review",
        "status": "waiting",
        "verdict": "",
    }


def test_the_first_job_authorizes_through_action_yml(
    tmp_path: Path, github: FakeGitHub, runner_temp: Path
) -> None:
    """somas-pipeline.yml's `authorize` job: the verdict reaches the job's outputs."""
    repo = github_env.repo_with_origin(tmp_path)
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    github.permissions["tess"] = "triage"
    labeled = payloads.issue_labeled(github.repository, ISSUE)
    run = job(repo, github, runner_temp, "issues", labeled, 5, "authorize-event")
    assert run.code == 0, run.steps[-1].stderr
    assert (run.outputs["verdict"], run.outputs["project_id"]) == ("run", "project-7")
    refused = payloads.issue_labeled(github.repository, ISSUE, sender="tess")
    run = job(repo, github, runner_temp, "issues", refused, 6, "authorize-event")
    assert run.code == 1 and run.outputs["verdict"] == "refuse"
    assert not [c for c in github.log if c.is_write]
    assert not (repo / ".somas" / "projects" / "project-7").exists()
