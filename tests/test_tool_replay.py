"""Replaying a recorded conversation with no model: exact reproduction, or the first divergence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.budget import BudgetGuard
from somas_action.core.clock import FakeClock
from somas_action.core.conversation import Record
from somas_action.core.errors import ConfigError
from somas_action.core.toolloop import Finished, LoopLimits, run_tool_loop
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from somas_action.state.tool_replay import ReplayReport, read_recording, replay, write_recording
from tests import tool_fixtures as lib

Runner = Callable[[Path], dict[str, Any]]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return lib.make_library(tmp_path / "ledger")


def tools_at(scratch: ScratchTree, runner: Runner = lib.run_pytest) -> RepositoryTools:
    specs = tool_specs(EDIT_TOOLS, edits=True)
    settings = lib.tool_settings(("src/", "tests/"))
    return RepositoryTools(scratch, specs, settings, runner, require_change=True)


def record_once(library: Path, path: Path) -> list[Record]:
    """Run the scripted change once and write its recording."""
    with ScratchTree.open(GitWorkspace(library), "main") as scratch:
        tools = tools_at(scratch)
        records: list[Record] = [
            lib.started(scratch.commit, scratch.base_tree(), [s.name for s in tools.specs()])
        ]
        outcome = run_tool_loop(
            lib.ScriptedModel(lib.discount_policy),
            tools,
            records,
            LoopLimits(max_turns=10),
            FakeClock(),
            BudgetGuard(None, {}),
            lambda r: None,
        )
        assert isinstance(outcome, Finished)
    write_recording(path, records)
    return records


def replay_file(
    library: Path, path: Path, ref: str, runner: Runner = lib.run_pytest
) -> ReplayReport:
    with ScratchTree.open(GitWorkspace(library), ref) as scratch:
        return replay(read_recording(path), tools_at(scratch, runner))


@pytest.mark.subprocess
def test_a_replay_reproduces_the_recording_exactly(library: Path, tmp_path: Path) -> None:
    path = tmp_path / "implementation.conversation.json"
    record_once(library, path)
    report = replay_file(library, path, "main")  # pytest's "in 0.05s" differs: masked
    assert report.divergence is None and (report.turns, report.tool_calls) == (7, 7)
    assert [c.path for c in report.changes] == [lib.MODULE, lib.NEW_TEST]


@pytest.mark.subprocess
def test_a_replay_names_the_first_divergence(library: Path, tmp_path: Path) -> None:
    path = tmp_path / "conversation.json"
    record_once(library, path)

    def broken_suite(tree: Path) -> dict[str, Any]:
        report = lib.run_pytest(tree)
        return {**report, "passed": report["passed"] - 1, "failed": 1}

    report = replay_file(library, path, "main", broken_suite)
    assert report.divergence is not None and report.tool_calls == 6
    divergence = report.divergence
    assert (divergence.turn, divergence.name, divergence.what) == (6, "run_tests", "result")
    assert divergence.detail == "line 3: recorded ' \"passed\": 5,', now ' \"failed\": 1,'"
    assert divergence.describe().startswith("turn 6, run_tests (t6_0): the result differs")


@pytest.mark.subprocess
def test_a_replay_on_another_base_commit_says_so_at_the_start(
    library: Path, tmp_path: Path
) -> None:
    path = tmp_path / "conversation.json"
    records = record_once(library, path)
    (library / "src" / "ledger" / "extra.py").write_text("def apply_discount(x):\n    pass\n")
    lib.git(library, "add", "-A")
    lib.git(library, "commit", "-qm", "another apply_discount")
    report = replay_file(library, path, "main")
    assert report.divergence is not None
    assert (report.divergence.turn, report.divergence.what) == (0, "base")
    # On the recorded base commit itself the replay still reproduces exactly.
    start = records[0]
    assert replay_file(library, path, start.base_commit).divergence is None  # type: ignore[union-attr]


def test_a_bad_recording_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": 1, "records": [{"type": "turn"}]}))
    with pytest.raises(ConfigError, match=r"bad\.json: records\[0\]: .*conversation\.schema"):
        read_recording(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON \(line 1 column 2"):
        read_recording(path)
