"""`somas replay`: a recorded project re-run with no model and no key, divergences named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import scenarios

pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]


def set_tool_loop(repo: Path, **values: int) -> None:
    path = repo / ".somas" / "config.yml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("tool_loop", {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def one_line(text: str) -> str:
    """Output as one line (the terminal output is wrapped at 80 columns)."""
    return " ".join(text.split())


def test_replay_re_runs_the_recorded_calls_and_matches(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    capsys.readouterr()

    code = main(["--repo", str(repo), "replay", "project-1", "--json"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["identical"] is True
    [conversation] = result["conversations"]
    assert conversation == {
        "conversation": "implementation-implementer-1",
        "stage": "implementation",
        "agent": "implementer",
        "turns": 7,
        "tool_calls": 7,
        "divergence": None,
    }
    # Replaying changes nothing: not the branch, not the log.
    log = (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes()
    tip = scenarios.git(repo, "rev-parse", "somas/project-1")
    assert main(["--repo", str(repo), "replay", "project-1"]) == 0
    assert "7 tool calls re-run, identical" in one_line(capsys.readouterr().out)
    assert (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes() == log
    assert scenarios.git(repo, "rev-parse", "somas/project-1") == tip
    assert scenarios.git(repo, "worktree", "list").count("\n") == 0


def test_replay_names_the_first_call_whose_result_no_longer_matches(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    set_tool_loop(repo, read_max_lines=10)  # read_file now answers 10 lines, not 16
    capsys.readouterr()

    code = main(["--repo", str(repo), "replay", "project-1"])

    out = one_line(capsys.readouterr().out)
    assert code == 1
    assert "first divergence at turn 2, read_file (call_2_0): the result differs" in out
    assert "line 1: recorded 'src/slugkit/__init__.py lines 1-16 of 16'" in out


def test_replay_of_a_stage_without_a_conversation_is_refused_clearly(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    capsys.readouterr()

    code = main(["--repo", str(repo), "replay", "project-1", "--stage", "validation"])

    assert code == 1
    err = one_line(capsys.readouterr().err)
    assert "project-1: no recorded tool conversation at stage validation" in err
