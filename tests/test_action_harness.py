"""The composite action run step by step as the runner runs it, against the fake GitHub.

One module-wide RUNNER_TEMP and cache: the first job installs SOMAS into its virtualenv and
saves it to the (emulated) cache; later jobs restore it and install nothing. Everything else is
per job: event file, output and summary files. Start-up times are printed by
`bench/action_start.py`, not asserted here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
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

    run = job(
        repo, github, runner_temp, "issues", payloads.issue_labeled(github.repository, ISSUE), 1
    )

    assert run.code == 0, run.steps[-1].stderr
    # A cold job: nothing cached, so SOMAS is installed (from its wheel) and the virtualenv saved.
    assert [s.name for s in run.steps] == [
        "Set up Python for SOMAS",
        "Plan SOMAS's install",
        "Restore SOMAS's virtualenv",
        "Install SOMAS",
        "Keep SOMAS's virtualenv for later jobs",
        "Prepare the sandbox for repository code",
        "Run SOMAS",
    ]
    assert run.steps[2].outputs == {"cache-hit": "false"}
    assert "SOMAS virtualenv: " in run.steps[3].stdout
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

    comment_id = github.add_comment(ISSUE, "/somas approve", login="alice")
    approve = payloads.comment_created(
        github.repository, ISSUE, "/somas approve", comment_id=comment_id, login="alice"
    )
    run = job(repo, github, runner_temp, "issue_comment", approve, 2)

    assert run.code == 0, run.steps[-1].stderr
    # A warm job: the virtualenv comes from the cache; nothing is installed.
    assert [s.name for s in run.steps] == [
        "Set up Python for SOMAS",
        "Plan SOMAS's install",
        "Restore SOMAS's virtualenv",
        "Prepare the sandbox for repository code",
        "Run SOMAS",
    ]
    assert run.steps[2].outputs["cache-hit"] == "true"
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
    # The action's own virtualenv holds SOMAS's runtime dependencies only: no installer, no
    # development tools (the recorded provider needs no AI SDK either).
    site = next((runner_temp / "somas-venv" / "lib").glob("python3.*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"somas_action", "pygithub", "jsonschema", "pyyaml"} <= installed
    unwanted = {"pip", "setuptools", "ruff", "mypy", "hypothesis", "pytest_mock", "openai"}
    assert not installed & unwanted
    size = sum(f.stat().st_size for f in (runner_temp / "somas-venv").rglob("*") if f.is_file())
    assert size < 80 * 1024 * 1024
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
