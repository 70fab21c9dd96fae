"""state.json as the log's projection: reconstruct, repair, hand edits, corruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from somas_action.core.errors import CommandRefused, StateError
from somas_action.core.names import validate_project_id
from somas_action.state.store import ProjectStore
from tests import scenarios
from tests.scenarios import log_of, state_of


@pytest.fixture
def waiting_repo(repo: Path, clock: FakeClock) -> Path:
    scenarios.run_to_gate(repo, clock)
    return repo


@pytest.mark.e2e
def test_reconstruct_gives_byte_identical_state(waiting_repo: Path) -> None:
    store = ProjectStore(waiting_repo, "project-1")
    written = store.state_path.read_bytes()
    store.state_path.unlink()
    assert main(["--repo", str(waiting_repo), "reconstruct", "project-1"]) == 0
    assert store.state_path.read_bytes() == written
    assert main(["--repo", str(waiting_repo), "reconstruct", "project-1", "--check"]) == 0


@pytest.mark.e2e
def test_reconstruct_check_shows_the_difference(
    waiting_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    path.write_text(path.read_text().replace('"status": "waiting"', '"status": "failed"', 1))
    assert main(["--repo", str(waiting_repo), "reconstruct", "project-1", "--check"]) == 1
    out = capsys.readouterr().out
    assert '-  "status": "failed",' in out and '+  "status": "waiting",' in out
    assert main(["--repo", str(waiting_repo), "reconstruct", "project-1"]) == 0
    assert state_of(waiting_repo)["status"] == "waiting"
    assert '"status": "failed"' in (path.parent / "state.json.backup").read_text()


@pytest.mark.e2e
def test_state_behind_the_log_is_reprojected(waiting_repo: Path, clock: FakeClock) -> None:
    store = ProjectStore(waiting_repo, "project-1")
    before = store.state_path.read_text()
    run = scenarios.runner(waiting_repo, clock)
    run.approve("project-1", "local:alice")
    store.state_path.write_text(before)  # as if we crashed between append and rewrite
    state, changes = store.load()
    assert [c.kind for c in changes] == ["state_rewritten"]
    assert scenarios.gate_of(state)["status"] == "approved"
    assert store.state_path.read_text() == before  # reading never writes
    run.load("project-1", "local:alice")  # a command that writes repairs it, with no event
    assert store.state_path.read_text() == store.reconstruct_text()
    assert log_of(waiting_repo)[-1]["event_type"] == "checkpoint_created"


@pytest.mark.subprocess
@pytest.mark.e2e
def test_hand_edit_restart_is_recorded_as_a_restart_with_fresh_attempts(
    waiting_repo: Path, clock: FakeClock
) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    edited = json.loads(path.read_text())
    assert edited["stages"]["validation"]["attempts"] == 1
    edited["status"] = "in_progress"
    edited["current_stage"] = "validation"
    edited["stages"]["validation"]["status"] = "pending"
    edited["title"] = "renamed by hand"
    path.write_text(json.dumps(edited, indent=2))

    run = scenarios.runner(waiting_repo, clock)
    _, state = run.load("project-1", "local:alice")

    last = log_of(waiting_repo)[-1]
    assert (last["event_type"], last["to_stage"], last["data"]["by_hand"]) == (
        "stage_restarted",
        "validation",
        True,
    )
    assert last["data"]["edit"]["changes"] == {
        "status": "in_progress",
        "current_stage": "validation",
        "stages": {"validation": {"status": "pending"}},
    }
    assert last["data"]["edit"]["ignored"] == ["title"]
    assert last["data"]["edit"]["detected_by"] == "local:alice"
    assert last["data"]["discarded"] == ["validation"]
    assert (state["status"], state["current_stage"]) == ("in_progress", "validation")
    # Attempt counts start afresh (no "attempt 2 of 3" after a restart by hand).
    assert state["stages"]["validation"]["attempts"] == 0
    assert state["title"] == scenarios.DEMO_ISSUE_TITLE
    assert ProjectStore(waiting_repo, "project-1").reconstruct_text() == path.read_text()


@pytest.mark.subprocess
@pytest.mark.e2e
def test_hand_edit_restart_past_a_waiting_gate_is_refused(
    waiting_repo: Path, clock: FakeClock
) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    log_before = log_of(waiting_repo)
    edited = json.loads(path.read_text())
    edited["status"] = "in_progress"
    edited["current_stage"] = "release"
    path.write_text(json.dumps(edited, indent=2))
    with pytest.raises(CommandRefused, match=r"would skip review \(waiting\).*--force"):
        scenarios.runner(waiting_repo, clock).load("project-1", "local:alice")
    assert log_of(waiting_repo) == log_before


@pytest.mark.subprocess
@pytest.mark.e2e
def test_other_hand_edits_are_recorded_as_they_are(waiting_repo: Path, clock: FakeClock) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    edited = json.loads(path.read_text())
    edited["stages"]["review"]["status"] = "failed"
    path.write_text(json.dumps(edited, indent=2))
    _, state = scenarios.runner(waiting_repo, clock).load("project-1", "local:alice")
    last = log_of(waiting_repo)[-1]
    assert last["event_type"] == "state_edit_recorded"
    assert last["data"]["changes"] == {"stages": {"review": {"status": "failed"}}}
    assert state["stages"]["review"]["status"] == "failed"


@pytest.mark.subprocess
@pytest.mark.e2e
def test_hand_edit_with_an_unknown_stage_is_refused(waiting_repo: Path, clock: FakeClock) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    path.write_text(
        path.read_text().replace('"current_stage": "review"', '"current_stage": "deploy"')
    )
    with pytest.raises(
        StateError, match=r"current_stage: unknown stage 'deploy'; valid stages: intake"
    ):
        scenarios.runner(waiting_repo, clock).load("project-1", "local:alice")


@pytest.mark.e2e
def test_corrupt_state_json_is_one_clear_line(
    waiting_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ProjectStore(waiting_repo, "project-1").state_path
    log_before = (path.parent / "transitions.jsonl").read_bytes()
    path.write_text(path.read_text()[:100])
    for command in (["status", "project-1"], ["advance", "project-1"], ["approve", "project-1"]):
        assert main(["--repo", str(waiting_repo), *command]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "state.json: not valid JSON" in err and "somas reconstruct project-1" in err
    assert (path.parent / "transitions.jsonl").read_bytes() == log_before


@pytest.mark.parametrize("bad", ["../../etc", "project-0", "project-1/../x", "Project-1", ""])
def test_project_ids_are_confined(bad: str) -> None:
    with pytest.raises(StateError, match="invalid project id"):
        validate_project_id(bad)
