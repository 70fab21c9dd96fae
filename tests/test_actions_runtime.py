"""Exact text SOMAS writes for the Actions runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.github import actions_runtime
from tests import scenarios


@pytest.fixture
def runner_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {name: tmp_path / name for name in ("output", "summary")}
    for path in files.values():
        path.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


def parse_outputs(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the runner does (heredoc form)."""
    values, lines = {}, text.split("\n")
    i = 0
    while i < len(lines) - 1:
        name, delimiter = lines[i].split("<<", 1)
        end = lines.index(delimiter, i + 1)
        values[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return values


def test_outputs_use_a_fresh_random_delimiter(runner_files: dict[str, Path]) -> None:
    hostile = "x\nghadelimiter_0\nstatus<<EOF\ninjected"
    actions_runtime.set_outputs({"project_id": "project-1", "status": hostile})
    actions_runtime.set_outputs({"stage": "review"})
    text = runner_files["output"].read_text()
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f]{32})\n", text)
    assert len(delimiters) == 3 and len(set(delimiters)) == 3
    assert parse_outputs(text) == {"project_id": "project-1", "status": hostile, "stage": "review"}


def test_annotations_masks_and_stop_commands(
    runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    actions_runtime.error("stage failed: 100%\nsee log", title="SOMAS: validation")
    actions_runtime.mask("sk-secret\nline2")
    with actions_runtime.untrusted_output():
        print("::add-mask::not-a-command")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "::error title=SOMAS%3A validation::stage failed: 100%25%0Asee log"
    assert out[1:3] == ["::add-mask::sk-secret", "::add-mask::line2"]
    token = out[3].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert out[4:] == ["::add-mask::not-a-command", f"::{token}::"]


def test_nothing_is_written_outside_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    actions_runtime.set_outputs({"a": "b"})
    actions_runtime.error("x")
    assert not output.exists() and capsys.readouterr().out == ""


@pytest.mark.e2e
def test_a_run_reports_outputs_summary_and_failures(
    repo: Path, runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(repo), "start", "--issue", "1", "--title", "Add slugify"]) == 0
    assert main(["--repo", str(repo), "advance", "project-1"]) == 0
    outputs = parse_outputs(runner_files["output"].read_text())
    assert outputs["project_id"] == "project-1"
    assert (outputs["stage"], outputs["status"]) == ("review", "waiting")
    summary = runner_files["summary"].read_text()
    assert "### SOMAS pipeline: `project-1` is **waiting**" in summary
    assert "```mermaid" in summary and "| review | ✋ waiting | 1 |" in summary
    assert main(["--repo", str(repo), "advance", "project-404"]) == 1
    assert "::error title=SOMAS::" in capsys.readouterr().out


@pytest.mark.e2e
def test_failed_attempts_become_error_annotations(
    repo: Path, tmp_path: Path, runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    recording = scenarios.make_recording(
        tmp_path / "rec",
        intake=[scenarios.error("timeout", "slow"), {"output": scenarios.demo_output("intake")}],
    )
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text().replace("builtin:demo", str(recording)))
    config.write_text(config.read_text().replace("backoff_seconds: 2", "backoff_seconds: 0"))
    main(["--repo", str(repo), "start", "--issue", "1", "--title", "x"])
    capsys.readouterr()
    main(["--repo", str(repo), "advance", "project-1"])
    out = capsys.readouterr().out.splitlines()
    annotation = (
        "::error title=SOMAS stage attempt failed::project-1 intake attempt 1: timeout: slow"
    )
    # Everything the command printed is inside a stop-commands block; our annotation follows it.
    token = out[0].removeprefix("::stop-commands::")
    assert out[0].startswith("::stop-commands::") and f"::{token}::" in out
    assert out.index(annotation) > out.index(f"::{token}::")
