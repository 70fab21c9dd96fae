"""One writer per project, and controls that stop a running pipeline at the next safe point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core import engine
from somas_action.core.clock import FakeClock
from somas_action.core.errors import ProjectBusy
from somas_action.pipeline.lease import lease_path
from somas_action.pipeline.operator import Operator
from somas_action.state.locks import file_lock
from tests import scenarios
from tests.scenarios import log_of, state_of

P = "project-1"
INJECT = Path(__file__).parent / "faults" / "inject"
# Bounded waits with wide margins: this machine may be shared and busy.
PROCESS_TIMEOUT = 600


def _somas(repo: Path, *args: str, delay: float = 0.0) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{INJECT}{os.pathsep}{Path(__file__).parent.parent}",
        "SOMAS_FAULT_AGENT_DELAY": str(delay),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "somas_action", "--repo", str(repo), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout: float = PROCESS_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def started(repo: Path, clock: FakeClock) -> Path:
    number = scenarios.open_issue(repo)
    scenarios.runner(repo, clock).start(number, "local:tester")
    return repo


@pytest.mark.subprocess
@pytest.mark.parametrize("runs", [2, 10])
def test_concurrent_advances_of_one_project_run_each_stage_once(started: Path, runs: int) -> None:
    processes = [_somas(started, "advance", P) for _ in range(runs)]
    results = [p.communicate(timeout=PROCESS_TIMEOUT) for p in processes]
    assert [p.returncode for p in processes] == [0] * runs, [err for _, err in results]
    kinds = [e["event_type"] for e in log_of(started)]
    # intake .. review: six stages, each started once, each agent called once.
    assert kinds.count("stage_started") == 6 and kinds.count("agent_invoked") == 6
    assert kinds.count("stage_completed") == 5 and kinds[-1] == "human_gate_opened"
    waiting = [err for _, err in results if "another run is advancing it" in err]
    assert len(waiting) >= 1 if runs > 1 else True
    assert main(["--repo", str(started), "verify", P]) == 0


@pytest.mark.subprocess
@pytest.mark.parametrize("control", ["pause", "cancel", "stop-all"])
def test_a_control_sent_mid_stage_stops_the_run_at_the_next_safe_point(
    started: Path, control: str
) -> None:
    process = _somas(started, "advance", P, delay=3.0)
    log = scenarios.project_dir(started) / "transitions.jsonl"
    _wait_for(
        lambda: b'"event_type": "agent_invoked", "stage": "specification"' in log.read_bytes()
    )
    command = [control] if control == "stop-all" else [control, P]
    assert main(["--repo", str(started), *command, "--actor", "local:ops"]) == 0
    _, err = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 1, err  # paused/cancelled: the run says why and stops
    events = log_of(started)
    controlled = next(
        i
        for i, e in enumerate(events)
        if e["event_type"] in ("project_paused", "project_cancelled")
    )
    after = [e["event_type"] for e in events[controlled + 1 :]]
    assert after == ["stage_attempt_abandoned"]  # no further step ran
    abandoned = events[-1]
    assert (abandoned["stage"], abandoned["data"]["counted"]) == ("specification", False)
    reply = scenarios.project_dir(started) / "artifacts" / "specification.abandoned-reply.json"
    assert json.loads(reply.read_text())  # the paid-for reply is kept
    state = state_of(started)
    assert state["status"] == ("cancelled" if control == "cancel" else "paused")
    assert state["stages"]["specification"]["attempts"] == 0  # the attempt does not count
    assert main(["--repo", str(started), "verify", P]) == 0


@pytest.mark.e2e
def test_an_attempt_left_open_by_a_dead_run_counts_and_never_exceeds_max(
    started: Path, clock: FakeClock
) -> None:
    run = scenarios.runner(started, clock)
    intake = run.s.config.stage("intake")
    for attempt in (1, 2, 3):
        store, state = run.load(P, "local:tester")
        ctx = run.recorder.step_context("local:dead-run", state)
        # A run started the attempt and was killed before recording its outcome.
        run.commit(store, state, engine.start_attempt(state, intake, attempt, None, ctx))
        if attempt < 3:
            store, state = run.load(P, "local:tester")
            assert (
                run.safepoints.close_abandoned(store, state, "local:tester")["stages"]["intake"][
                    "attempts"
                ]
                == attempt
            )
    state, stop = run.advance(P, "local:tester")
    events = log_of(started)
    abandoned = [e for e in events if e["event_type"] == "stage_attempt_abandoned"]
    assert [(e["attempt"], e["data"]["counted"]) for e in abandoned] == [
        (1, True),
        (2, True),
        (3, True),
    ]
    assert max(e["attempt"] for e in events if e["event_type"] == "stage_started") == 3
    assert (state["status"], stop.code) == ("failed", 1)
    assert events[-1]["event_type"] == "dead_letter_recorded"
    assert events[-1]["data"]["dead_letter"]["error"]["kind"] == "abandoned"


def test_a_second_run_refuses_clearly_when_the_holder_does_not_let_go(
    started: Path, clock: FakeClock
) -> None:
    run = scenarios.runner(started, clock)
    run.s.lease_wait_seconds = 0.3
    with file_lock(lease_path(started, P)) as fd:
        os.pwrite(fd, json.dumps({"actor": "local:other", "pid": 4242, "host": "h"}).encode(), 0)
        with pytest.raises(ProjectBusy, match=r"local:other \(pid 4242 on h"):
            run.advance(P, "local:tester")
    assert [e["event_type"] for e in log_of(started)] == ["project_created"]


def test_a_tripped_ai_breaker_parks_a_project_on_the_recorded_provider(
    started: Path, clock: FakeClock
) -> None:
    assert main(["--repo", str(started), "breaker", "trip", "ai_api"]) == 0
    state, stop = scenarios.runner(started, clock).advance(P, "local:tester")
    assert state["status"] == "parked" and "breaker reset ai_api" in stop.reason
    assert "stage_started" not in [e["event_type"] for e in log_of(started)]


def test_advance_outside_a_git_repository_is_refused_before_any_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    assert main(["--repo", str(folder), "init", "--no-workflow"]) == 0
    assert main(["--repo", str(folder), "start", "--issue", "1", "--title", "x"]) == 0
    capsys.readouterr()
    assert main(["--repo", str(folder), "advance", P]) == 1
    assert "not a git repository" in capsys.readouterr().err
    assert [e["event_type"] for e in log_of(folder)] == ["project_created"]


def test_waits_say_so_and_pauses_stop_them(started: Path, clock: FakeClock) -> None:
    from somas_action.pipeline.watch import RunStopped, Watch, WatchedClock

    lines: list[str] = []
    watched = WatchedClock(clock)
    watched._say = lines.append  # type: ignore[method-assign,assignment]
    store = scenarios.runner(started, clock).store(P)
    end = store.log.end()
    stopped: list[str] = []

    def on_moved() -> None:
        stopped.append("moved")
        raise RunStopped("paused")

    watched.watch = Watch(store, end.offset, end.hash, on_moved)
    watched.sleep(4.0)
    assert lines == ["  waiting 4s (retry backoff or the service's Retry-After)"]
    Operator(scenarios.runner(started, clock)).pause(P, "local:ops")
    with pytest.raises(RunStopped):
        watched.sleep(1.0)
    assert clock.sleeps == [4.0, 1.0] and stopped == ["moved"]
