"""Every load checks the log: torn tails, cuts, tampering, hand-appended lines, old formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from somas_action.core.errors import StateError
from somas_action.core.projection import render, strip_digest, without_log_position
from somas_action.pipeline.operator import Operator
from somas_action.state.store import ProjectStore
from tests import scenarios
from tests.scenarios import log_of, state_of

P = "project-1"


@pytest.fixture
def approved(repo: Path, clock: FakeClock) -> tuple[Path, bytes, bytes, bytes]:
    """A project approved at the review gate: (repo, log before, state before, log after)."""
    scenarios.run_to_gate(repo, clock)
    store = ProjectStore(repo, P)
    log_before, state_before = store.log.path.read_bytes(), store.state_path.read_bytes()
    scenarios.runner(repo, clock).approve(P, "local:alice")
    return repo, log_before, state_before, store.log.path.read_bytes()


def _files(repo: Path) -> dict[str, bytes]:
    folder = scenarios.project_dir(repo)
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_torn_batch_is_kept_whole_or_dropped_whole(
    approved: tuple[Path, bytes, bytes, bytes], clock: FakeClock
) -> None:
    repo, before, state_before, after = approved
    store = ProjectStore(repo, P)
    batch = {e["id"] for e in map(json.loads, after[len(before) :].splitlines())}
    assert len(batch) == 3  # human_gate_approved, stage_completed, checkpoint_created
    # Every 17th byte of the batch and both ends; the fault suite cuts at every byte.
    cuts = sorted({*range(len(before) + 1, len(after), 17), len(after) - 1, len(after)})
    for cut in cuts:
        # A writer died after (part of) the append, before state.json caught up.
        store.log.path.write_bytes(after[:cut])
        store.state_path.write_bytes(state_before)
        (store.dir / "transitions.jsonl.torn").unlink(missing_ok=True)
        _, state = scenarios.runner(repo, clock).load(P, "local:tester")
        kept = {e["id"] for e in log_of(repo)} & batch
        assert kept in (set(), batch), cut
        complete = cut == len(after)
        assert scenarios.gate_of(state)["status"] == ("approved" if complete else "waiting"), cut
        if not complete:
            assert (
                (store.dir / "transitions.jsonl.torn")
                .read_bytes()
                .startswith(after[len(before) : cut])
            )
        assert store.state_path.read_text() == store.reconstruct_text()


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_log_cut_in_the_middle_is_refused_by_every_command(
    approved: tuple[Path, bytes, bytes, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _, _, after = approved
    store = ProjectStore(repo, P)
    cut = after.index(b"\n", len(after) // 3) + 10  # 10 bytes into a line in the middle
    store.log.path.write_bytes(after[:cut])
    files = _files(repo)
    for command in (
        ["advance", P],
        ["approve", P],
        ["pause", P],
        ["incident", "note", P, "--text", "x"],
        ["status", P],
        ["health", P],
    ):
        capsys.readouterr()
        assert main(["--repo", str(repo), *command]) == 1, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "is the first missing" in err and "somas reconstruct project-1" in err, err
    assert _files(repo) == files  # nothing was "repaired"
    assert main(["--repo", str(repo), "list"]) == 1
    assert "UNREADABLE" in capsys.readouterr().out


@pytest.mark.subprocess
@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["edit", "delete", "insert"])
def test_a_tampered_middle_line_is_refused_naming_it(
    approved: tuple[Path, bytes, bytes, bytes],
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    repo, _, _, after = approved
    store = ProjectStore(repo, P)
    lines = after.split(b"\n")[:-1]
    if kind == "edit":  # same length, still valid JSON: only the chain notices
        lines[9] = lines[9].replace(b'"actor": "l', b'"actor": "L', 1)
    elif kind == "delete":
        del lines[9]
    else:
        lines.insert(10, lines[9])
    store.log.path.write_bytes(b"\n".join(lines) + b"\n")
    expected = {"edit": "line 10: hash chain broken", "delete": "line 10: seq is 11"}
    with pytest.raises(StateError, match=expected.get(kind, "line 11: seq is 10")):
        scenarios.runner(repo, clock).advance(P, "local:tester")
    with pytest.raises(StateError):
        Operator(scenarios.runner(repo, clock)).pause(P, "local:ops")
    assert main(["--repo", str(repo), "status", P]) == 1
    assert "line 1" in capsys.readouterr().err


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_resolution_appended_by_hand_becomes_an_event(repo: Path, clock: FakeClock) -> None:
    scenarios.run_to_gate(repo, clock)
    log = scenarios.project_dir(repo) / "transitions.jsonl"
    # The runbook's post-incident step: "update the transitions log with the resolution".
    with open(log, "a") as handle:
        handle.write('{"event": "resolution", "resolution": "keys rotated, resumed"}\n')
    assert main(["--repo", str(repo), "status", P]) == 0  # a view notes it, writes nothing
    assert log.read_text().endswith('resumed"}\n')
    Operator(scenarios.runner(repo, clock)).pause(P, "local:ops")
    kinds = [e["event_type"] for e in log_of(repo)]
    assert kinds[-2:] == ["incident_resolved", "project_paused"]
    resolved = log_of(repo)[-2]
    assert resolved["data"]["text"] == "keys rotated, resumed" and resolved["data"]["by_hand"]
    assert "appended to transitions.jsonl by hand" in resolved["actor"]
    assert state_of(repo)["incident"]["resolution"] == "keys rotated, resumed"
    hand = scenarios.project_dir(repo) / "transitions.jsonl.hand"
    assert "keys rotated" in hand.read_text()
    assert main(["--repo", str(repo), "verify", P]) == 0


def test_an_empty_log_is_one_clear_line_and_start_opens_the_project_again(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.open_issue(repo)
    folder = scenarios.project_dir(repo)
    folder.mkdir(parents=True)
    (folder / "transitions.jsonl").write_bytes(b'{"seq": 1, "v": 1, "id": "ev')  # torn first
    for command in (["status", P], ["advance", P]):
        assert main(["--repo", str(repo), *command]) == 1
        assert "somas start --issue 1" in capsys.readouterr().err
    assert main(["--repo", str(repo), "list"]) == 1
    assert main(["--repo", str(repo), "start", "--issue", "1"]) == 0
    assert [e["event_type"] for e in log_of(repo)] == ["project_created"]
    assert (folder / "transitions.jsonl.torn").read_bytes().startswith(b'{"seq": 1')


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_state_json_from_before_log_bytes_loads_verifies_and_is_upgraded(
    repo: Path, clock: FakeClock
) -> None:
    scenarios.run_to_gate(repo, clock)
    store = ProjectStore(repo, P)
    state = strip_digest(json.loads(store.state_path.read_text()))
    old = render(without_log_position(state))
    store.state_path.write_text(old)
    assert "log_bytes" not in old
    assert store.load()[0]["status"] == "waiting"
    for command in (["verify", P], ["reconstruct", P, "--check"], ["status", P]):
        assert main(["--repo", str(repo), *command]) == 0
    assert store.state_path.read_text() == old  # views and checks write nothing
    Operator(scenarios.runner(repo, clock)).pause(P, "local:ops")
    assert state_of(repo)["last_event"]["log_bytes"] == store.log.path.stat().st_size
    assert main(["--repo", str(repo), "reconstruct", P, "--check"]) == 0


@pytest.mark.subprocess
@pytest.mark.e2e
def test_views_and_verify_never_write(
    approved: tuple[Path, bytes, bytes, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _, state_before, after = approved
    store = ProjectStore(repo, P)
    store.log.path.write_bytes(after[:-20])  # a torn approval batch
    store.state_path.write_bytes(state_before)
    files = _files(repo)
    for command in (["status", P], ["health", P], ["list"], ["monitor"], ["verify", P]):
        main(["--repo", str(repo), *command])
    assert _files(repo) == files
    assert "FAIL log end: ends in a batch cut short" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("state.json", b"\xff\xfe{}", "state.json: not valid JSON (not UTF-8"),
        ("state.json", b"[" * 100_000 + b"]" * 100_000, "state.json: JSON nested too deeply"),
        ("state.json", b'{"status": 3, "last_event": []}', "last_event: expected an object"),
        ("dead_letters.json", b"[1, 2]", "dead_letters.json: entry 1 is not a dead letter"),
    ],
)
@pytest.mark.subprocess
@pytest.mark.e2e
def test_corrupt_files_are_one_clear_line(
    repo: Path,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    expected: str,
) -> None:
    scenarios.run_to_gate(repo, clock)
    (scenarios.project_dir(repo) / name).write_bytes(content)
    command = ["dead-letters", P, "list"] if name == "dead_letters.json" else ["status", P]
    capsys.readouterr()
    assert main(["--repo", str(repo), *command]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


@pytest.mark.subprocess
@pytest.mark.e2e
def test_a_folder_where_state_json_should_be_is_one_clear_line(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    path = scenarios.project_dir(repo) / "state.json"
    path.unlink()
    path.mkdir()
    for command in (["status", P], ["advance", P], ["reconstruct", P]):
        assert main(["--repo", str(repo), *command]) == 1
        assert "is a folder, not a file" in capsys.readouterr().err
