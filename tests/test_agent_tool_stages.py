"""Agents with tools in the pipeline: the real SDKs against the fake AI server, on the record.

The implementer is a scripted model (`tests/demo_recording.demo_policy`) that decides each turn
from the real tool results; the pipeline runs it through the tool loop, records every turn and
call as events, commits its change and validates it with the repository's own suite. Bounds
(turns, budget, the run's deadline, a 429 with Retry-After) keep the work and park; the next
run continues the same conversation, which the fake server's request log proves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from somas_action.core.clock import FakeClock
from somas_action.core.domain import State
from somas_action.pipeline.runner import Runner
from somas_action.state.git import GitWorkspace
from tests import scenarios
from tests.demo_recording import demo_policy
from tests.fakes import live
from tests.fakes.ai_server import (
    ANTHROPIC,
    OPENAI,
    FakeAIServer,
    Request,
    for_stage,
    rate_limited,
    task_of,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fakes]
MODELS = {OPENAI: ("openai", "gpt-4o"), ANTHROPIC: ("anthropic", "claude-sonnet-4-20250514")}
STAGES: list[dict[str, Any]] = [
    {
        "name": "implementation",
        "agent": "implementer",
        "secondary_agents": ["debugger"],
        "quality_gates": [{"type": "output_field", "field": "files"}],
    },
    {
        "name": "validation",
        "agent": "validator",
        "quality_gates": [{"name": "tests-pass", "type": "tests_passed", "min_tests": 1}],
    },
    {
        "name": "review",
        "agent": "reviewer",
        "human_gate": True,
        "on_reject": "implementation",
        "quality_gates": [
            {"type": "artifact_exists", "artifact": "review.md"},
            {"type": "verdict", "equals": "approve"},
        ],
    },
]
TOOL_NAMES = [
    "search",
    "read_file",
    "replace_in_file",
    "read_file",
    "replace_in_file",
    "run_tests",
    "finish",
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", live.OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", live.ANTHROPIC_KEY)
    with FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY) as fake:
        fake.policy(OPENAI, for_stage("implementation", demo_policy))
        fake.policy(ANTHROPIC, for_stage("implementation", demo_policy))
        yield fake
        assert fake.violations == []


@pytest.fixture
def still() -> FakeClock:
    return FakeClock(step_seconds=0)


def configure(repo: Path, server: FakeAIServer, api: str, **config: Any) -> None:
    """Implementation, validation and review, live; every agent on `api`'s model alone."""
    live.configure(repo, server, stages=STAGES, **config)
    for agent in ("implementer", "validator", "reviewer", "debugger"):
        live.set_chain(repo, agent, MODELS[api])


def set_config(repo: Path, section: str, **values: Any) -> None:
    path = repo / ".somas" / "config.yml"
    data = yaml.safe_load(path.read_text())
    data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def start(repo: Path, clock: FakeClock) -> Runner:
    run = scenarios.runner(repo, clock)
    run.start(scenarios.open_issue(repo), "local:tester")
    return run


def advance(run: Runner) -> State:
    state, _ = run.advance("project-1", "local:tester")
    return state


def events_of(repo: Path, *types: str) -> list[dict[str, Any]]:
    return [e for e in scenarios.log_of(repo) if e["event_type"] in types]


def implementer_requests(server: FakeAIServer) -> list[Request]:
    """The requests of the implementer's conversation (its task names the stage)."""
    return [
        r
        for r in server.requests
        if isinstance(r.body, dict) and task_of(r.body).get("stage") == "implementation"
    ]


def assistant_turns(request: Request) -> int:
    return sum(1 for m in request.body["messages"] if m["role"] == "assistant")


def branch_diff(repo: Path) -> list[str]:
    return scenarios.git(repo, "diff", "--numstat", "main...somas/project-1").splitlines()


SMALL_DIFF = ["11\t3\tsrc/slugkit/__init__.py", "10\t0\ttests/test_slugify.py"]


@pytest.mark.subprocess
@pytest.mark.parametrize("api", [OPENAI, ANTHROPIC])
def test_the_implementer_reads_edits_and_tests_through_the_tools_on_the_record(
    repo: Path, server: FakeAIServer, still: FakeClock, api: str
) -> None:
    configure(repo, server, api)
    state = advance(start(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    calls = events_of(repo, "agent_tool_called")
    implementer = [e for e in calls if e["stage"] == "implementation"]
    assert [e["data"]["name"] for e in implementer] == TOOL_NAMES
    assert all(e["status"] == "ok" for e in implementer)
    # Each call's full output is an artifact whose digest the event keeps.
    for event in implementer:
        artifact = scenarios.project_dir(repo) / "artifacts" / event["data"]["artifact"]
        assert artifact.read_text() and event["data"]["sha256"]
    run_tests = next(e for e in implementer if e["data"]["name"] == "run_tests")
    report = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / run_tests["data"]["artifact"]).read_text()
    )
    assert (report["verdict"], report["passed"], report["total"]) == ("passed", 7, 7)
    # The change is a small diff of the existing module, committed and validated.
    assert branch_diff(repo) == SMALL_DIFF
    results = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / "test_results.json").read_text()
    )
    assert (results["passed"], results["total"], results["regressions"]) == (7, 7, [])
    # Turns are usage: 7 implementer turns and the reviewer's one, priced.
    assert state["metrics"]["agent_turns"] == 8 and state["metrics"]["tool_calls"] == 8
    assert state["metrics"]["usage"]["by_stage"]["implementation"]["calls"] == 7
    assert state["metrics"]["usage"]["cost_usd"] > 0
    # The reviewer read-only: it finished with its verdict, and its task held the diff.
    review = events_of(repo, "agent_conversation_started")[-1]
    assert review["data"]["tools"] == ["list_files", "read_file", "search", "finish"]
    assert "max_length: int | None = None" in review["data"]["user"]
    assert "Files may be changed only under" not in review["data"]["user"]
    started = events_of(repo, "agent_conversation_started")[0]
    assert "Files may be changed only under: src/, tests/" in started["data"]["user"]
    # One request per turn; each carries the conversation so far.
    requests = implementer_requests(server)
    assert [assistant_turns(r) for r in requests] == list(range(7))
    assert scenarios.schema_problems(repo) == []


@pytest.mark.subprocess
def test_the_turn_limit_parks_with_the_work_and_the_next_run_continues_the_conversation(
    repo: Path, server: FakeAIServer, still: FakeClock
) -> None:
    configure(repo, server, OPENAI)
    set_config(repo, "tool_loop", max_turns=3)
    run = start(repo, still)

    state = advance(run)

    parked = scenarios.parked_of(state)
    assert (state["status"], parked["kind"], parked["retry_at"]) == ("parked", "turn_limit", None)
    assert "tool_loop.max_turns" in parked["reason"]
    stopped = events_of(repo, "agent_loop_stopped")[-1]
    assert (stopped["data"]["turns"], stopped["data"]["resumable"]) == (3, True)
    # The replace of turn 3 was committed to the branch: nothing is lost while parked.
    assert scenarios.git(repo, "rev-parse", "somas/project-1") == stopped["data"]["commit"]
    assert branch_diff(repo) == ["11\t3\tsrc/slugkit/__init__.py"]
    assert state["stages"]["implementation"]["attempts"] == 0  # the park used no attempt

    set_config(repo, "tool_loop", max_turns=40)
    state = advance(scenarios.runner(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    requests = implementer_requests(server)
    # Turn 4 was asked with the three recorded turns: continued, not restarted.
    assert [assistant_turns(r) for r in requests] == list(range(7))
    assert len(events_of(repo, "agent_conversation_started")) == 2  # implementer, reviewer
    assert branch_diff(repo) == SMALL_DIFF
    subjects = scenarios.git(repo, "log", "--format=%s", "main..somas/project-1").splitlines()
    assert subjects == [
        "slugify: add max_length, cut at a word boundary",
        "somas(project-1): implementation work so far (turn_limit; the conversation continues)",
    ]


@pytest.mark.subprocess
def test_a_429_past_what_the_run_can_wait_parks_until_retry_after_then_continues(
    repo: Path, server: FakeAIServer, still: FakeClock
) -> None:
    configure(repo, server, OPENAI)
    server.on_request = lambda n: server.script(OPENAI, rate_limited("600")) if n == 4 else None
    run = start(repo, still)

    state = advance(run)

    parked = scenarios.parked_of(state)
    # Longer than a run waits: the provider's breaker is open until then, and the project
    # parks until then too, with the work of the first three turns committed.
    assert (state["status"], parked["kind"]) == ("parked", "circuit_open")
    assert parked["retry_at"] == "2026-01-01T09:10:00.000Z"  # Retry-After: 600 from 09:00
    assert "rate limited for 600s" in json.dumps(state["circuit_breakers"]["openai"])
    assert branch_diff(repo) == ["11\t3\tsrc/slugkit/__init__.py"]
    assert len(server.requests) == 5  # three turns, the 429, nothing more
    # Before Retry-After: the breaker says no, and no request is made.
    state = advance(scenarios.runner(repo, still))
    assert state["status"] == "parked" and len(server.requests) == 5

    still.advance(601)
    state = advance(scenarios.runner(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    requests = [r for r in implementer_requests(server) if r.answer == "policy"]
    assert [assistant_turns(r) for r in requests] == list(range(7))
    assert branch_diff(repo) == SMALL_DIFF


@pytest.mark.subprocess
def test_the_budget_parks_before_a_call_that_could_exceed_it_then_continues(
    repo: Path, server: FakeAIServer, still: FakeClock
) -> None:
    configure(repo, server, OPENAI, budget={"max_tokens": 9000})
    run = start(repo, still)

    state = advance(run)

    parked = scenarios.parked_of(state)
    assert (parked["kind"], parked["retry_at"]) == ("budget_exhausted", None)
    asked = len(server.requests)
    spent = state["metrics"]["usage"]["input_tokens"] + state["metrics"]["usage"]["output_tokens"]
    assert spent <= 9000 and 0 < asked < 7

    set_config(repo, "agent_provider", budget={"max_tokens": 200000})
    state = advance(scenarios.runner(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    requests = implementer_requests(server)
    assert [assistant_turns(r) for r in requests] == list(range(7))


@pytest.mark.subprocess
def test_the_runs_deadline_parks_and_the_next_run_continues(
    repo: Path, server: FakeAIServer, still: FakeClock
) -> None:
    configure(repo, server, OPENAI)
    set_config(repo, "error_handling", run_budget_seconds=200)
    # Each model answer takes a minute of the run's time.
    server.on_request = lambda n: still.advance(60)
    state = advance(start(repo, still))

    parked = scenarios.parked_of(state)
    assert parked["kind"] == "run_deadline"
    stopped = events_of(repo, "agent_loop_stopped")[-1]
    turns = stopped["data"]["turns"]
    assert 0 < turns < 7

    state = advance(scenarios.runner(repo, still))
    while state["status"] == "parked":  # each run gets 200 s: a few turns at a time
        state = advance(scenarios.runner(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    requests = implementer_requests(server)
    assert [assistant_turns(r) for r in requests] == list(range(7))


def _kill_at(pid_file: Path, number: int) -> Any:
    def hook(request: int) -> None:
        if request == number:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)

    return hook


@pytest.mark.subprocess
def test_a_sigkill_in_the_loop_then_advance_continues_and_applies_no_call_twice(
    repo: Path, server: FakeAIServer, still: FakeClock, tmp_path: Path
) -> None:
    configure(repo, server, OPENAI)
    scenarios.runner(repo, still).start(scenarios.open_issue(repo), "local:tester")
    pid_file = tmp_path / "child.pid"
    server.on_request = _kill_at(pid_file, 5)  # turn 5 asked: turns 1-4 are on the record
    env = {**os.environ, "OPENAI_API_KEY": live.OPENAI_KEY}
    child = subprocess.Popen(
        [sys.executable, "-m", "somas_action", "--repo", str(repo), "advance", "project-1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pid_file.write_text(str(child.pid))
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    server.on_request = None
    before = events_of(repo, "agent_tool_called")
    assert [e["data"]["name"] for e in before] == TOOL_NAMES[:4]

    state = advance(scenarios.runner(repo, still))

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    calls = [e for e in events_of(repo, "agent_tool_called") if e["stage"] == "implementation"]
    assert [e["data"]["name"] for e in calls] == TOOL_NAMES
    assert len({e["data"]["call_id"] for e in calls}) == len(calls)  # none ran twice
    requests = implementer_requests(server)
    # Turn 5 was asked twice (the first answer never arrived), nothing before it again.
    assert [assistant_turns(r) for r in requests] == [0, 1, 2, 3, 4, 4, 5, 6]
    module = scenarios.git(repo, "show", "somas/project-1:src/slugkit/__init__.py")
    assert module.count("max_length: int | None = None") == 1
    assert branch_diff(repo) == SMALL_DIFF
    # No scratch worktree is left behind by the killed run.
    assert scenarios.git(repo, "worktree", "list").count("\n") == 0


@pytest.mark.subprocess
def test_a_branch_that_moved_while_parked_closes_the_old_conversation_and_starts_anew(
    repo: Path, server: FakeAIServer, still: FakeClock
) -> None:
    configure(repo, server, OPENAI)
    set_config(repo, "tool_loop", max_turns=3)
    advance(start(repo, still))
    # Someone else commits to the project branch while the project is parked.
    moved = GitWorkspace(repo).commit_files(
        "somas/project-1", [("README.md", "# moved\n")], "by hand"
    )
    set_config(repo, "tool_loop", max_turns=40)

    state = advance(scenarios.runner(repo, still))

    closed = events_of(repo, "agent_loop_stopped")[-1]
    assert closed["data"]["conversation"] == "implementation-implementer-1"
    assert (closed["data"]["resumable"], closed["data"]["turns"]) == (False, 3)
    assert "the project branch moved since the conversation began" in closed["data"]["reason"]
    _, second, _ = events_of(repo, "agent_conversation_started")
    assert second["data"]["conversation"] == "implementation-implementer-2"
    assert second["data"]["base_commit"] == moved  # the branch as it is now, README kept
    # The new conversation began at turn 1; the old one's turns were not asked again.
    requests = implementer_requests(server)
    assert [assistant_turns(r) for r in requests] == [0, 1, 2, *range(7)]
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert "# moved" in scenarios.git(repo, "show", "somas/project-1:README.md")
