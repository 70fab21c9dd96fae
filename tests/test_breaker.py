"""Circuit breakers: the state machine on an injected clock, the shared file, the runbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from somas_action.core.errors import ProviderError, StateError
from somas_action.core.settings import BreakerSettings
from somas_action.state.breakers import CircuitBreaker
from somas_action.state.store import ProjectStore
from tests import scenarios

SETTINGS = BreakerSettings(failure_threshold=3, recovery_timeout=60, half_open_requests=2)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A plain folder with `.somas/`: the breaker file needs no git repository."""
    (tmp_path / ".somas").mkdir()
    return tmp_path


@pytest.fixture
def still() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock(step_seconds=0)


def breaker(folder: Path, clock: FakeClock, service: str = "openai") -> CircuitBreaker:
    return CircuitBreaker(service, repo=folder, clock=clock, settings=SETTINGS, actor="local:t")


def call_through(b: CircuitBreaker, service_call: Callable[[], None]) -> None:
    """What a provider does per HTTP request: ask the breaker, call, report."""
    b.acquire()
    try:
        service_call()
    except ConnectionError:
        b.record_failure("transient", "HTTP 500")
        raise
    b.record_success()


def test_opens_after_threshold_and_then_makes_zero_calls(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still)
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError("500")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            call_through(b, down)
    assert b.current_state() == "closed"
    b.acquire()
    transition = b.record_failure("timeout", "no reply")
    assert transition is not None
    assert (transition.from_state, transition.to_state) == ("closed", "open")
    assert transition.event_type == "circuit_breaker_opened"
    assert "3 failures in a row (last: timeout)" in transition.reason

    for _ in range(5):
        with pytest.raises(ProviderError) as refused:
            call_through(b, down)
        assert refused.value.kind == "circuit_open"
        assert refused.value.retry_after == 60
    assert len(calls) == 2  # none while open


def test_a_success_resets_the_count_of_failures_in_a_row(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still)
    for _ in range(2):
        b.record_failure("transient", "x")
    b.record_success()
    for _ in range(2):
        assert b.record_failure("transient", "x") is None
    assert b.current_state() == "closed"


def test_half_open_lets_exactly_n_probes_and_a_success_closes(
    folder: Path, still: FakeClock
) -> None:
    b = breaker(folder, still)
    for _ in range(3):
        b.record_failure("transient", "x")
    still.advance(59)
    with pytest.raises(ProviderError, match="circuit breaker openai is open"):
        b.acquire()
    still.advance(1)
    assert b.current_state() == "half_open"
    first = b.acquire()
    assert first is not None and first.event_type == "circuit_breaker_half_opened"
    assert b.acquire() is None  # the second probe
    with pytest.raises(ProviderError, match="every probe slot taken"):
        b.acquire()
    closed = b.record_success()
    assert closed is not None and closed.event_type == "circuit_breaker_closed"
    assert b.record()["failures"] == 0
    assert b.acquire() is None and b.current_state() == "closed"


def test_a_failed_probe_reopens_for_another_recovery_timeout(
    folder: Path, still: FakeClock
) -> None:
    b = breaker(folder, still)
    for _ in range(3):
        b.record_failure("transient", "x")
    still.advance(60)
    b.acquire()
    reopened = b.record_failure("transient", "still down")
    assert reopened is not None and reopened.to_state == "open"
    assert reopened.reason == "probe failed (transient)"
    with pytest.raises(ProviderError):
        b.acquire()
    still.advance(60)
    assert b.acquire() is not None  # half-open again


def test_a_probe_that_never_reports_frees_its_slot(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still)
    for _ in range(3):
        b.record_failure("transient", "x")
    still.advance(60)
    b.acquire()
    b.acquire()  # two probes whose processes die
    with pytest.raises(ProviderError):
        b.acquire()
    still.advance(60)
    assert b.acquire() is None


def test_a_neutral_outcome_frees_the_probe_without_closing(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still)
    for _ in range(3):
        b.record_failure("transient", "x")
    still.advance(60)
    b.acquire()
    b.acquire()
    b.release()  # e.g. a 400 or a cancelled run: no verdict on the service
    assert b.current_state() == "half_open"
    assert b.acquire() is None


def test_trip_holds_open_until_reset(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still, "ai_api")
    tripped = b.trip()
    assert tripped.event_type == "circuit_breaker_tripped"
    assert tripped.reason == "tripped by local:t"
    still.advance(10 * 365 * 86400)
    with pytest.raises(ProviderError, match="until an operator resets it") as refused:
        b.acquire()
    assert refused.value.retry_after is None
    reset = b.reset()
    assert (reset.from_state, reset.to_state, reset.event_type) == (
        "open",
        "closed",
        "circuit_breaker_reset",
    )
    assert b.acquire() is None


def test_rate_limit_beyond_the_run_opens_until_then(folder: Path, still: FakeClock) -> None:
    b = breaker(folder, still)
    opened = b.open_until(still.now().replace(hour=10), "rate limited for 3600s")
    assert opened is not None and opened.view["retry_at"] == "2026-01-01T10:00:00.000Z"
    still.advance(3599)
    with pytest.raises(ProviderError):
        b.acquire()
    still.advance(1)
    assert b.acquire() is not None


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from somas_action.core.clock import FakeClock
    from somas_action.core.settings import BreakerSettings
    from somas_action.state.breakers import CircuitBreaker
    b = CircuitBreaker("openai", repo=Path(sys.argv[1]), clock=FakeClock(step_seconds=0),
                       settings=BreakerSettings(1000, 60, 3), actor="child")
    for _ in range(int(sys.argv[2])):
        b.record_failure("transient", "HTTP 500")
    """
)


@pytest.mark.subprocess
def test_two_processes_share_one_breaker_without_losing_updates(folder: Path) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), "40"]) for _ in range(2)
    ]
    assert [child.wait(timeout=60) for child in children] == [0, 0]
    record = json.loads((folder / ".somas" / "breakers.json").read_text())["services"]["openai"]
    assert record["failures"] == 80  # every read-modify-write held the lock


@pytest.mark.subprocess
def test_a_breaker_opened_by_another_process_refuses_here(folder: Path, still: FakeClock) -> None:
    child = _CHILD.replace("BreakerSettings(1000, 60, 3)", "BreakerSettings(3, 60, 3)")
    subprocess.run([sys.executable, "-c", child, str(folder), "3"], check=True)
    with pytest.raises(ProviderError) as refused:
        breaker(folder, still).acquire()
    assert refused.value.kind == "circuit_open"


RUNBOOK_RESET = """\
from somas.core.circuit_breaker import CircuitBreaker

breaker = CircuitBreaker(service_name="ai_api")
breaker.reset()  # Force closed state
"""
RUNBOOK_TRIP = """\
from somas.core.circuit_breaker import CircuitBreaker

breaker = CircuitBreaker(service_name="ai_api")
breaker.trip()  # Force open state
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOMAS_REPO"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.subprocess
def test_the_runbook_snippets_work_verbatim_and_reach_state_json(
    repo: Path, clock: FakeClock
) -> None:
    number = scenarios.open_issue(repo)
    scenarios.runner(repo, clock).start(number, "local:tester")
    tripped = _python(RUNBOOK_TRIP, cwd=repo / "src")  # found from a subfolder too
    assert tripped.returncode == 0, tripped.stderr
    state = scenarios.state_of(repo)
    assert state["circuit_breakers"]["ai_api"]["state"] == "open"
    assert state["circuit_breakers"]["ai_api"]["reason"] == "tripped by local:tester"

    reset = _python(RUNBOOK_RESET, cwd=repo)
    assert reset.returncode == 0, reset.stderr
    state = scenarios.state_of(repo)
    assert state["circuit_breakers"]["ai_api"]["state"] == "closed"
    grep = subprocess.run(
        ["grep", "circuit_breaker", ".somas/projects/project-1/transitions.jsonl"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [json.loads(line)["event_type"] for line in grep] == [
        "circuit_breaker_tripped",
        "circuit_breaker_reset",
    ]
    assert (
        ProjectStore(repo, "project-1").reconstruct_text()
        == (scenarios.project_dir(repo) / "state.json").read_text()
    )
    assert scenarios.schema_problems(repo) == []


@pytest.mark.subprocess
def test_the_runbook_snippet_outside_a_repository_is_one_line(tmp_path: Path) -> None:
    result = _python(RUNBOOK_RESET, cwd=tmp_path)
    assert result.returncode == 1
    assert "no .somas/ folder here or above" in result.stderr.strip().splitlines()[-1]


def test_cli_status_reset_and_trip(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.runner(repo, clock).start(scenarios.open_issue(repo), "local:tester")
    assert main(["--repo", str(repo), "breaker", "trip", "openai"]) == 0
    out = capsys.readouterr().out
    assert "openai: closed -> open (tripped by local:tester)" in out
    assert "recorded in: project-1" in out

    assert main(["--repo", str(repo), "breaker", "status", "--json"]) == 0
    rows = {row["service"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"ai_api", "github_api", "openai", "anthropic", "github-models"}
    assert rows["openai"]["state"] == "open" and rows["ai_api"]["state"] == "closed"

    assert main(["--repo", str(repo), "breaker", "reset", "openai"]) == 0
    assert main(["--repo", str(repo), "breaker", "status", "openai"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("openai         closed")

    assert main(["--repo", str(repo), "breaker", "reset", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("somas: error: unknown service 'nope'; known: ai_api, github_api")


def test_a_corrupt_breakers_file_is_one_line_naming_it(folder: Path, still: FakeClock) -> None:
    path = folder / ".somas" / "breakers.json"
    path.write_text('{"version": 1, "services": {"openai": {"state": "ajar"}}}')
    with pytest.raises(StateError, match=r"breakers.json: services.openai"):
        breaker(folder, still).acquire()
    path.write_text("{")
    with pytest.raises(StateError, match="not valid JSON"):
        breaker(folder, still).record()


def test_operator_changes_in_the_same_instant_are_all_mirrored(
    repo: Path, still: FakeClock
) -> None:
    from somas.core.circuit_breaker import CircuitBreaker as RunbookBreaker

    scenarios.runner(repo, still).start(scenarios.open_issue(repo), "local:tester")
    b = RunbookBreaker("ai_api", repo=repo, clock=still, settings=SETTINGS, actor="local:t")
    b.trip()
    b.reset()
    b.trip()
    assert b.last_mirrored == ["project-1"]
    mirrored = [e["event_type"] for e in scenarios.log_of(repo)[1:]]
    assert mirrored == [
        "circuit_breaker_tripped",
        "circuit_breaker_reset",
        "circuit_breaker_tripped",
    ]
    assert scenarios.state_of(repo)["circuit_breakers"]["ai_api"]["state"] == "open"
