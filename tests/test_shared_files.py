"""Shared files have one writer at a time; side effects happen once; faults are one line."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from somas_action.state.git import GitWorkspace
from somas_action.state.local_tracker import LocalTracker
from tests import scenarios
from tests.scenarios import log_of, state_of

P = "project-1"


def _upsert(args: tuple[str, int]) -> None:
    repo, number = args
    tracker = LocalTracker(Path(repo))
    for round_ in range(5):
        tracker.upsert_pull_request(f"somas/project-{number}", "main", f"t{round_}", "b")


def test_parallel_pull_request_upserts_lose_no_record(tmp_path: Path) -> None:
    (tmp_path / ".somas" / "tracker").mkdir(parents=True)
    with multiprocessing.get_context("spawn").Pool(10) as pool:
        pool.map(_upsert, [(str(tmp_path), n) for n in range(1, 11)])
    pulls = json.loads((tmp_path / ".somas" / "tracker" / "pulls.json").read_text())
    assert sorted(p["head"] for p in pulls) == sorted(f"somas/project-{n}" for n in range(1, 11))
    assert sorted(p["number"] for p in pulls) == list(range(1, 11))


def test_committing_the_same_files_again_makes_no_second_commit(repo: Path) -> None:
    workspace = GitWorkspace(repo)
    files = [("src/a.py", "x = 1\n")]
    first = workspace.commit_files("somas/project-1", files, "implementation")
    assert workspace.commit_files("somas/project-1", files, "implementation (retry)") == first
    changed = workspace.commit_files("somas/project-1", [("src/a.py", "x = 2\n")], "fix")
    assert changed != first


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_stale_git_lock_is_cleared_and_recorded(repo: Path, clock: FakeClock) -> None:
    number = scenarios.open_issue(repo)
    run = scenarios.runner(repo, clock)
    run.start(number, "local:tester")
    lock = repo / ".git" / "refs" / "heads" / "somas" / "project-1.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # a git killed while it updated the project branch left this
    state, _ = run.advance(P, "local:tester")
    assert state["status"] == "waiting"
    assert not lock.exists()
    cleared = [e for e in log_of(repo) if e["event_type"] == "git_lock_cleared"]
    assert len(cleared) == 1 and cleared[0]["data"]["path"].endswith("project-1.lock")


def test_a_lock_a_live_process_holds_is_left_alone(tmp_path: Path) -> None:
    from somas_action.state.git_locks import clear_if_stale

    lock = tmp_path / "index.lock"
    with open(lock, "w"):
        assert clear_if_stale(lock) is False  # held open (by us): a git at work
    assert clear_if_stale(lock) is True and not lock.exists()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on the disk"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
@pytest.mark.subprocess
@pytest.mark.e2e
def test_file_system_faults_are_one_line_and_record_nothing_half_way(
    repo: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: int,
    words: str,
) -> None:
    scenarios.run_to_gate(repo, clock)
    folder = scenarios.project_dir(repo)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    real_write = os.write

    def failing(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code), str(folder / "transitions.jsonl"))

    monkeypatch.setattr(os, "write", failing)
    capsys.readouterr()
    assert main(["--repo", str(repo), "approve", P]) == 1
    monkeypatch.setattr(os, "write", real_write)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "transitions.jsonl" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert main(["--repo", str(repo), "approve", P]) == 0  # the same command, run again


@pytest.mark.subprocess
@pytest.mark.e2e
def test_stop_all_works_when_the_config_does_not_load(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    config = repo / ".somas" / "config.yml"
    config.write_text(config.read_text().replace("pipeline:", "pipeline:\n  enabled: [oops", 1))
    capsys.readouterr()
    assert main(["--repo", str(repo), "stop-all"]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "is not valid YAML" in captured.err
    assert "paused: project-1" in captured.out
    assert state_of(repo)["status"] == "paused"
    assert "enabled: false" in config.read_text()


def test_control_characters_in_titles_never_reach_the_terminal_raw(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    number = scenarios.open_issue(repo, title="evil \x1b[31mred\x1b[0m \x07title")
    scenarios.runner(repo, clock).start(number, "local:tester")
    capsys.readouterr()
    assert main(["--repo", str(repo), "status", P]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mred" in out
