"""The composite action's install plan: what a job installs and prepares, from its event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from somas_action.github import install_plan
from somas_action.github.install_plan import plan, source_digest
from tests.fakes import payloads

REPO = "octo-org/octo-repo"


def _repo(tmp_path: Path, provider: str = "recorded") -> Path:
    (tmp_path / ".somas").mkdir(parents=True)
    (tmp_path / ".somas" / "config.yml").write_text(
        f"version: 1\nagent_provider:\n  type: {provider}   # live: real models\n"
    )
    return tmp_path


def test_authorizing_and_answering_install_the_base_and_no_sandbox(tmp_path: Path) -> None:
    labeled = payloads.issue_labeled(REPO, 7)
    for command in ("authorize-event", "answer-event", "monitor --alert-issue"):
        found = plan(command, "issues", labeled, "3.11.9", _repo(tmp_path / command, "live"))
        assert (found.extras, found.sandbox) == ("", False)
        assert found.key.endswith("-base")


def test_a_command_that_runs_no_stage_needs_no_sandbox_and_no_sdk(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "live")
    for body in ("/somas status", "/somas pause", "/somas cancel", "hello"):
        comment = payloads.comment_created(REPO, 7, body, comment_id=1)
        found = plan("handle-event", "issue_comment", comment, "3.11.9", repo)
        assert (found.extras, found.sandbox) == ("", False), body


def test_a_command_that_advances_gets_the_sandbox_and_the_sdks_only_for_live_models(
    tmp_path: Path,
) -> None:
    approve = payloads.comment_created(REPO, 7, "/somas approve", comment_id=1)
    live = plan("handle-event", "issue_comment", approve, "3.11.9", _repo(tmp_path / "l", "live"))
    assert (live.extras, live.sandbox) == ("anthropic,openai", True)
    assert live.key.endswith("-anthropic-openai")
    recorded = plan("handle-event", "issue_comment", approve, "3.11.9", _repo(tmp_path / "r"))
    assert (recorded.extras, recorded.sandbox) == ("", True)
    # An unreadable event: install what the run could need.
    unsure = plan("handle-event", "issues", None, "3.11.9", _repo(tmp_path / "u", "live"))
    assert (unsure.extras, unsure.sandbox) == ("anthropic,openai", True)


def test_an_agent_run_as_an_engine_adds_the_engines_extra_for_advancing_jobs(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path / "repo", "live")
    (repo / ".somas" / "agents").mkdir()
    (repo / ".somas" / "agents" / "reviewer.yml").write_text("name: reviewer\n# engine: later\n")
    approve = payloads.comment_created(REPO, 7, "/somas approve", comment_id=1)
    assert plan("handle-event", "issue_comment", approve, "3.11.9", repo).extras == (
        "anthropic,openai"
    )
    (repo / ".somas" / "agents" / "implementer.yml").write_text(
        "name: implementer\nengine:\n  engine: claude-code\n"
    )
    found = plan("handle-event", "issue_comment", approve, "3.11.9", repo)
    assert (found.extras, found.sandbox) == ("anthropic,openai,engines", True)
    assert found.key.endswith("-anthropic-openai-engines")
    status = plan("authorize-event", "issue_comment", approve, "3.11.9", repo)
    assert status.extras == ""


def test_the_key_names_the_exact_python_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path / "repo")
    key = plan("authorize-event", "issues", None, "3.11.9", repo).key
    assert key.startswith("somas-venv-") and "-py3.11.9-0.1.0-" in key
    assert plan("authorize-event", "issues", None, "3.11.10", repo).key != key
    source = tmp_path / "source"
    (source / "somas_action").mkdir(parents=True)
    (source / "pyproject.toml").write_text('version = "0.1.0"\n')
    (source / "somas_action" / "a.py").write_text("x = 1\n")
    before = source_digest(source)
    (source / "somas_action" / "a.py").write_text("x = 2\n")
    assert source_digest(source) != before  # another commit of SOMAS: another virtualenv


@pytest.mark.subprocess
def test_the_plan_runs_with_the_standard_library_alone(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    approve = payloads.comment_created(REPO, 7, "/somas approve", comment_id=1)
    event.write_text(json.dumps(approve))
    done = subprocess.run(
        [sys.executable, "-S", "-I", install_plan.__file__],  # no site-packages at all
        env={"GITHUB_EVENT_NAME": "issue_comment", "GITHUB_EVENT_PATH": str(event)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert set(lines) == {"key", "extras", "sandbox"}
    # An approval runs stages; no .somas/config.yml here, so the recorded default: no SDKs.
    assert (lines["extras"], lines["sandbox"]) == ("", "true")
