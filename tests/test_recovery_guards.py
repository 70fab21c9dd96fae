"""Recovery never moves a project past an unpassed gate, or back over later work, silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import scenarios
from tests.scenarios import error, log_of, state_of

P = "project-1"


def somas(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), *args])


@pytest.fixture
def waiting(repo: Path, clock: FakeClock) -> Path:
    """Project 1 waits at the review gate."""
    scenarios.run_to_gate(repo, clock)
    return repo


@pytest.fixture
def failed(repo: Path, tmp_path: Path, clock: FakeClock) -> Path:
    """Project 1 failed at validation (the validator timed out three times)."""
    recording = scenarios.make_recording(
        tmp_path / "rec", validation=[error("timeout", "validator timed out")] * 3
    )
    scenarios.run_to_gate(repo, clock, recording)
    return repo


@pytest.mark.subprocess
@pytest.mark.e2e
def test_restart_past_a_waiting_human_gate_is_refused_unless_forced(
    waiting: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = log_of(waiting)
    assert somas(waiting, "restart", P, "--stage", "release") == 1
    assert "would skip review (waiting); restart at review instead" in capsys.readouterr().err
    assert log_of(waiting) == before
    assert somas(waiting, "restart", P, "--stage", "release", "--force", "--no-advance") == 0
    restart = log_of(waiting)[-1]
    assert restart["data"]["skipped"] == [{"stage": "review", "status": "waiting"}]


@pytest.mark.subprocess
@pytest.mark.e2e
def test_restart_past_a_failed_stage_is_refused_unless_forced(
    failed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert somas(failed, "restart", P, "--stage", "review") == 1
    assert "would skip validation (failed)" in capsys.readouterr().err
    assert state_of(failed)["status"] == "failed"
    # Restarting the failed stage itself skips nothing.
    assert somas(failed, "restart", P, "--stage", "validation") == 0
    assert state_of(failed)["current_stage"] == "review"


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_stage_that_succeeds_after_a_restart_resolves_its_dead_letter(failed: Path) -> None:
    assert len(json.loads((scenarios.project_dir(failed) / "dead_letters.json").read_text())) == 1
    assert somas(failed, "restart", P, "--stage", "validation") == 0
    state = state_of(failed)
    assert (state["status"], state["dead_letter_ids"]) == ("waiting", [])
    resolved = [e for e in log_of(failed) if e["event_type"] == "dead_letters_resolved"]
    assert len(resolved) == 1 and resolved[0]["data"]["stage"] == "validation"
    assert json.loads((scenarios.project_dir(failed) / "dead_letters.json").read_text()) == []
    assert somas(failed, "verify", P) == 0


@pytest.mark.e2e
def test_an_old_dead_letter_retry_is_refused_once_the_project_moved_past_it(
    failed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letter = json.loads((scenarios.project_dir(failed) / "dead_letters.json").read_text())[0]
    # The operator skips the failed validation on purpose; the project waits at review.
    assert somas(failed, "restart", P, "--stage", "review", "--force") == 0
    assert (state_of(failed)["status"], state_of(failed)["current_stage"]) == ("waiting", "review")
    assert state_of(failed)["dead_letter_ids"] == [letter["id"]]  # validation never passed
    capsys.readouterr()
    assert somas(failed, "dead-letters", P, "retry", letter["id"]) == 1
    err = capsys.readouterr().err
    assert "has moved past validation" in err and "--force" in err
    assert state_of(failed)["current_stage"] == "review"
    assert somas(failed, "dead-letters", P, "retry", letter["id"], "--force", "--no-advance") == 0
    retried = log_of(failed)[-1]
    assert retried["event_type"] == "dead_letter_retried"
    assert retried["data"]["discarded"] == ["review"]


@pytest.mark.e2e
def test_retry_refuses_to_rewind_over_later_work(
    failed: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from somas_action.core import controls
    from somas_action.core.engine import Context
    from somas_action.core.errors import CommandRefused

    letter = json.loads((scenarios.project_dir(failed) / "dead_letters.json").read_text())[0]
    state = json.loads((scenarios.project_dir(failed) / "state.json").read_text())
    state["current_stage"] = "review"
    state["status"] = "waiting"
    state["stages"]["validation"]["status"] = "completed"
    ctx = Context("local:ops", "2026-01-01T00:00:00.000Z", "retry")
    with pytest.raises(CommandRefused, match=r"has moved past validation.*--force"):
        controls.retry_dead_letter(state, letter, ctx)
    drafts = controls.retry_dead_letter(state, letter, ctx, force=True)
    assert drafts[0]["data"]["discarded"] == ["validation", "review"]


@pytest.mark.subprocess
@pytest.mark.e2e
def test_restore_picks_the_newest_valid_backup_and_refuses_an_old_one(
    waiting: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = scenarios.project_dir(waiting)
    assert somas(waiting, "backup", P) == 0
    good = next(folder.glob("state.json.backup.*"))
    corrupt = folder / "state.json.backup"
    corrupt.write_text('{"status": "waiting"')  # newer, but not a state.json
    os.utime(good, (1, 1))
    assert somas(waiting, "restore", P) == 0
    restored = log_of(waiting)[-1]
    assert restored["data"]["from"] == good.name
    capsys.readouterr()
    scenarios.runner(waiting, clock).approve(P, "local:alice")
    assert somas(waiting, "restore", P, "--from", good.name) == 1
    err = capsys.readouterr().err
    assert f"{good.name} was taken at event #" in err and "somas reconstruct project-1" in err
    assert state_of(waiting)["human_gate"]["status"] == "approved"


@pytest.mark.e2e
def test_a_second_purge_keeps_the_first_backup(failed: Path) -> None:
    folder = scenarios.project_dir(failed)
    assert somas(failed, "dead-letters", P, "purge") == 0
    first = json.loads((folder / "dead_letters.json.backup").read_text())
    assert len(first) == 1
    assert somas(failed, "dead-letters", P, "purge") == 0
    assert json.loads((folder / "dead_letters.json.backup").read_text()) == first
    assert json.loads((folder / "dead_letters.json.backup.2").read_text()) == []
