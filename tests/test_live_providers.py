"""The real `openai` and `anthropic` SDKs against a fake provider on 127.0.0.1.

Each scenario asserts the HTTP calls made, the events written, the breaker state and the
project's final state. The clock is fake: every wait is recorded in `clock.sleeps`, none is
slept (only the fake server's slow and hanging answers take real, sub-second time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from somas_action.core.clock import FakeClock
from somas_action.core.domain import State
from somas_action.pipeline.runner import Runner
from somas_action.state.breakers import CircuitBreaker
from somas_action.state.local_tracker import LocalTracker
from somas_action.state.store import ProjectStore
from tests import scenarios
from tests.fakes import live
from tests.fakes.ai_server import (
    ANTHROPIC,
    OPENAI,
    FakeAIServer,
    garbage,
    hang,
    invalid,
    ok,
    quota,
    rate_limited,
    refusal,
    server_error,
    slow,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fakes]
MODELS = {OPENAI: ("openai", "gpt-4o-mini"), ANTHROPIC: ("anthropic", "claude-3-5-haiku-latest")}
OTHER = {OPENAI: ANTHROPIC, ANTHROPIC: OPENAI}
BOTH = [OPENAI, ANTHROPIC]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", live.OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", live.ANTHROPIC_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", live.GITHUB_TOKEN)
    with FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY, live.GITHUB_TOKEN) as fake:
        yield fake


@pytest.fixture
def still() -> FakeClock:
    """Time moves only by the (recorded, never slept) waits and explicit advances."""
    return FakeClock(step_seconds=0)


BREAKER_DEFAULTS = scenarios.config_section().error_handling.circuit_breaker


def start_intake(
    repo: Path, clock: FakeClock, server: FakeAIServer, chain: list[str], **config: Any
) -> Runner:
    """A one-stage (intake) pipeline on the fake server; the agent uses `chain` in order."""
    live.configure(repo, server, stages=live.INTAKE_ONLY, **config)
    live.set_chain(repo, "intake-analyst", *(MODELS[api] for api in chain))
    live.without_tools(repo, "intake-analyst")  # the structured path (the tool loop: elsewhere)
    run = scenarios.runner(repo, clock)
    run.start(scenarios.open_issue(repo), "local:tester")
    return run


def advance(run: Runner) -> tuple[State, str]:
    state, stop = run.advance("project-1", "local:tester")
    return state, stop.reason


def types(repo: Path) -> list[str]:
    return [e["event_type"] for e in scenarios.log_of(repo)[1:]]


def events_of(repo: Path, event_type: str) -> list[dict[str, Any]]:
    return [e for e in scenarios.log_of(repo) if e["event_type"] == event_type]


def breaker_record(repo: Path, service: str) -> dict[str, Any]:
    path = repo / ".somas" / "breakers.json"
    services = json.loads(path.read_text())["services"] if path.exists() else {}
    return services.get(service) or {"state": "closed", "failures": 0}


def letters(repo: Path) -> list[dict[str, Any]]:
    return scenarios.json_array(scenarios.project_dir(repo) / "dead_letters.json")


def consistent(repo: Path) -> None:
    """Every file matches its schema and state.json is the exact fold of the log."""
    assert scenarios.schema_problems(repo) == []
    text = (scenarios.project_dir(repo) / "state.json").read_text()
    assert ProjectStore(repo, "project-1").reconstruct_text() == text


@pytest.mark.parametrize("api", BOTH)
def test_a_valid_reply_takes_one_call(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str
) -> None:
    state, _ = advance(start_intake(repo, still, server, [api]))

    assert (server.calls(api), server.calls(OTHER[api])) == (1, 0)
    assert types(repo) == [
        "stage_started",
        "agent_invoked",
        "agent_usage_recorded",
        "agent_output_accepted",
        "artifacts_written",
        "quality_gates_evaluated",
        "stage_completed",
        "checkpoint_created",
        "project_completed",
    ]
    assert state["status"] == "completed"
    usage = state["metrics"]["usage"]
    assert usage["by_stage"]["intake"]["calls"] == 1 and usage["cost_usd"] > 0
    assert usage["by_model"][f"{api}/{MODELS[api][1]}"]["input_tokens"] > 0
    assert breaker_record(repo, api)["state"] == "closed"
    body = server.requests[0].body
    if api == OPENAI:
        schema = body["response_format"]["json_schema"]
        assert schema["name"] == "intake_output" and "requirements" in schema["schema"]["required"]
        assert body["max_completion_tokens"] == 4096
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "submit_intake_output"}
        assert "requirements" in body["tools"][0]["input_schema"]["required"]
    consistent(repo)


@pytest.mark.parametrize("api", BOTH)
def test_an_invalid_reply_is_repaired_with_the_validation_errors(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str
) -> None:
    server.script(api, invalid(), ok())
    state, _ = advance(start_intake(repo, still, server, [api]))

    assert server.calls(api) == 2
    assert types(repo)[2:5] == [
        "agent_usage_recorded",
        "agent_output_rejected",
        "agent_usage_recorded",
    ]
    assert state["status"] == "completed" and state["stages"]["intake"]["attempts"] == 1
    assert state["metrics"]["invalid_outputs"] == 1
    assert still.sleeps == []  # a repair is asked at once: the service is not struggling
    assert breaker_record(repo, api)["failures"] == 0  # invalid output never counts
    repair = server.requests[1].body["messages"][-1]
    if api == OPENAI:
        assert repair["content"].startswith("Your reply did not match the required JSON Schema")
    else:  # the fake checks the tool_result answers the previous tool_use
        assert repair["content"][0]["type"] == "tool_result"
        assert repair["content"][0]["is_error"] is True
        assert "summary" in repair["content"][0]["content"]


def test_invalid_replies_use_up_the_stage_then_one_dead_letter_with_a_trace(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    server.always(OPENAI, invalid())
    state, reason = advance(start_intake(repo, still, server, [OPENAI]))

    assert server.calls(OPENAI) == 9  # 3 calls per attempt, 3 attempts
    assert still.sleeps == [2.0, 4.0]  # only the stage's backoff
    assert state["status"] == "failed" and "failed at intake" in reason
    assert breaker_record(repo, OPENAI)["state"] == "closed"
    assert len(events_of(repo, "agent_output_rejected")) == 9
    [letter] = letters(repo)
    assert letter["error"]["kind"] == "invalid_output"
    assert letter["replay"]["inputs"]["issue"]["title"] == scenarios.DEMO_ISSUE_TITLE
    trace = [entry["event_type"] for entry in letter["trace"]]
    assert trace.count("stage_started") == 3 and trace.count("stage_attempt_failed") == 2
    assert trace.count("agent_output_rejected") == 9
    consistent(repo)


@pytest.mark.parametrize("api", BOTH)
@pytest.mark.parametrize(
    ("answer", "waited"),
    [
        (rate_limited("7"), 7.0),
        (rate_limited(), 1.0),  # no hint: our backoff
        (rate_limited(retry_after_ms="1500"), 1.5),
    ],
)
def test_a_rate_limit_is_waited_out_as_the_service_asks(
    repo: Path,
    still: FakeClock,
    server: FakeAIServer,
    api: str,
    answer: Any,
    waited: float,
) -> None:
    server.script(api, answer, ok())
    state, _ = advance(start_intake(repo, still, server, [api]))

    assert server.calls(api) == 2
    assert still.sleeps == [waited]
    assert types(repo)[2:4] == ["provider_call_failed", "agent_usage_recorded"]
    failed = events_of(repo, "provider_call_failed")[0]
    assert (failed["status"], failed["data"]["error"]["status"]) == ("rate_limited", 429)
    # The 429 counted, the success after it reset the count: the breaker is closed and clean.
    assert (breaker_record(repo, api)["state"], breaker_record(repo, api)["failures"]) == (
        "closed",
        0,
    )
    assert state["status"] == "completed"


@pytest.mark.parametrize(
    ("api", "headers", "waited"),
    [
        (OPENAI, {"x_ratelimit_reset_requests": "6s", "x_ratelimit_reset_tokens": "1m0s"}, 60.0),
        (ANTHROPIC, {"anthropic_ratelimit_requests_reset": "2026-01-01T09:00:05Z"}, 5.0),
    ],
)
def test_provider_reset_headers_are_honoured(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str, headers: Any, waited: float
) -> None:
    server.script(api, rate_limited(**headers), ok())
    live_settings = {"retry": {"max_wait_seconds": 120}}
    state, _ = advance(start_intake(repo, still, server, [api], **live_settings))
    assert still.sleeps == [waited] and state["status"] == "completed"


@pytest.mark.parametrize("api", BOTH)
def test_a_retry_after_longer_than_a_run_parks_the_project(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str
) -> None:
    server.script(api, rate_limited("3600"))
    run = start_intake(repo, still, server, [api])
    state, reason = advance(run)

    assert server.calls(api) == 1 and still.sleeps == []
    opened = events_of(repo, "circuit_breaker_opened")
    assert [(e["data"]["service"], e["data"]["reason"]) for e in opened] == [
        (api, "rate limited for 3600s")
    ]
    assert state["status"] == "parked" and state["stages"]["intake"]["attempts"] == 0
    parked = scenarios.parked_of(state)
    assert parked["retry_at"] == "2026-01-01T10:00:00.000Z" and parked["kind"] == "circuit_open"
    assert state["circuit_breakers"][api]["state"] == "open"
    assert "parked at intake" in reason and "after 2026-01-01T10:00:00.000Z" in reason
    assert "somas:parked" in LocalTracker(repo).record(1)["labels"]

    before = types(repo)
    state, _ = advance(run)  # too early: no call, nothing recorded
    assert server.calls() == 1 and types(repo) == before

    still.advance(3600)
    state, _ = advance(run)
    assert state["status"] == "completed" and server.calls(api) == 2
    assert types(repo)[len(before) :][:5] == [
        "project_unparked",
        "stage_started",
        "agent_invoked",
        "circuit_breaker_half_opened",
        "circuit_breaker_closed",
    ]
    assert state["circuit_breakers"][api]["state"] == "closed"
    consistent(repo)


def test_a_permanent_outage_of_every_provider_is_bounded_then_parked(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    """The worst case docs/resilience.md states: 10 requests, 10 s of waits, then park."""
    server.always(OPENAI, server_error(500))
    server.always(ANTHROPIC, server_error(529))
    run = start_intake(repo, still, server, [OPENAI, ANTHROPIC])
    state, reason = advance(run)

    assert (server.calls(OPENAI), server.calls(ANTHROPIC)) == (5, 5)  # failure_threshold each
    assert still.sleeps == [1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 1.0] and sum(still.sleeps) == 10
    assert len(events_of(repo, "provider_call_failed")) == 10
    assert [e["data"]["service"] for e in events_of(repo, "circuit_breaker_opened")] == BOTH
    assert [e["attempt"] for e in events_of(repo, "provider_fallback")] == [1, 2]
    assert [e["attempt"] for e in events_of(repo, "stage_attempt_failed")] == [1]
    assert types(repo)[-2:] == ["checkpoint_created", "project_parked"]
    assert state["status"] == "parked" and state["stages"]["intake"]["attempts"] == 1
    assert scenarios.parked_of(state)["services"] == BOTH
    assert state["dead_letter_count"] == 0  # nothing failed for good
    assert breaker_record(repo, "ai_api")["failures"] == 2  # one per agent call
    assert "circuit breaker open" not in reason or "somas advance" in reason

    advance(run)  # still open: zero calls
    assert server.calls() == 10
    still.advance(60)
    state, _ = advance(run)  # one probe per provider, then parked again
    assert server.calls() == 12 and state["status"] == "parked"
    assert state["stages"]["intake"]["attempts"] == 1
    consistent(repo)


@pytest.mark.parametrize("api", BOTH)
@pytest.mark.parametrize("answer", [slow(1.0), hang()], ids=["slow", "hang"])
def test_timeouts_count_against_the_breaker(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str, answer: Any
) -> None:
    server.always(api, answer)
    run = start_intake(repo, still, server, [api], timeout=0.2, breaker={"failure_threshold": 2})
    state, _ = advance(run)

    assert server.calls(api) == 2
    assert [e["status"] for e in events_of(repo, "provider_call_failed")] == ["timeout"] * 2
    assert (
        "no reply within 0.2s"
        in events_of(repo, "provider_call_failed")[0]["data"]["error"]["message"]
    )
    assert breaker_record(repo, api)["state"] == "open"
    assert state["status"] == "parked"


def test_a_missing_key_fails_at_once_naming_the_variable(
    repo: Path, still: FakeClock, server: FakeAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    state, _ = advance(start_intake(repo, still, server, [OPENAI]))

    assert server.calls() == 0
    assert state["status"] == "failed" and state["stages"]["intake"]["attempts"] == 1
    [letter] = letters(repo)
    assert letter["error"]["kind"] == "auth"
    assert "no API key: set OPENAI_API_KEY" in letter["error"]["message"]
    assert "secrets.OPENAI_API_KEY" in letter["error"]["message"]
    assert not (repo / ".somas" / "breakers.json").exists() or (
        breaker_record(repo, OPENAI)["failures"] == 0
    )


def test_a_refused_key_is_not_an_outage_and_never_written_anywhere(
    repo: Path, still: FakeClock, server: FakeAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-test-WRONG-7777aaaa8888bbbb"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    run = start_intake(repo, still, server, [OPENAI, ANTHROPIC])
    server.script(ANTHROPIC, server_error(500))
    state, _ = advance(run)

    assert server.calls(OPENAI) == 1  # 401 is not retried
    assert server.requests[0].answer == "refused"
    assert breaker_record(repo, OPENAI)["failures"] == 0  # 401 does not count
    assert state["status"] == "completed"  # fell back to anthropic (after one 500)
    refused = events_of(repo, "provider_call_failed")[0]["data"]["error"]
    assert (
        refused["kind"] == "auth" and "OPENAI_API_KEY was refused (HTTP 401)" in refused["message"]
    )

    scenarios.git(repo, "add", "-A")
    scenarios.git(repo, "commit", "-q", "-m", "state")
    written = [p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts]
    history = subprocess.run(
        ["git", "-C", str(repo), "log", "-p", "--all"], capture_output=True, check=True
    ).stdout
    for secret in (wrong, live.OPENAI_KEY, live.ANTHROPIC_KEY):
        assert secret.encode() not in history
        for path in written:
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("api", BOTH)
def test_quota_exhausted_stops_the_stage_for_a_person(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str
) -> None:
    server.always(api, quota())
    state, _ = advance(start_intake(repo, still, server, [api]))

    assert server.calls(api) == 1
    assert types(repo)[2:4] == ["provider_call_failed", "stage_attempt_failed"]
    assert breaker_record(repo, api)["failures"] == 1  # a 429: the service refuses us
    assert state["status"] == "failed" and state["stages"]["intake"]["attempts"] == 1
    assert letters(repo)[0]["error"]["kind"] == "quota"
    assert "add credit or use another provider" in letters(repo)[0]["error"]["message"]


def test_a_failing_provider_falls_back_down_the_chain(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    server.always(OPENAI, server_error(503))
    state, _ = advance(start_intake(repo, still, server, [OPENAI, ANTHROPIC]))

    assert (server.calls(OPENAI), server.calls(ANTHROPIC)) == (3, 1)
    [fallback] = events_of(repo, "provider_fallback")
    assert fallback["data"] == {
        "from": "openai/gpt-4o-mini",
        "to": "anthropic/claude-3-5-haiku-latest",
        "because": "transient",
    }
    assert state["status"] == "completed"
    assert breaker_record(repo, OPENAI)["failures"] == 3
    assert state["metrics"]["provider_fallbacks"] == 1


def test_an_open_breaker_is_skipped_with_zero_calls(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    run = start_intake(repo, still, server, [OPENAI, ANTHROPIC])
    CircuitBreaker("openai", repo=repo, clock=still, settings=BREAKER_DEFAULTS).trip()
    state, _ = advance(run)

    assert (server.calls(OPENAI), server.calls(ANTHROPIC)) == (0, 1)
    assert events_of(repo, "provider_fallback")[0]["data"]["because"] == "circuit_open"
    assert state["circuit_breakers"]["openai"]["state"] == "open"
    assert state["status"] == "completed"


def test_the_ai_api_breaker_stops_every_call(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    run = start_intake(repo, still, server, [OPENAI, ANTHROPIC])
    CircuitBreaker("ai_api", repo=repo, clock=still, settings=BREAKER_DEFAULTS).trip()
    state, reason = advance(run)

    assert server.calls() == 0
    assert state["status"] == "parked" and state["stages"]["intake"]["attempts"] == 0
    assert scenarios.parked_of(state)["retry_at"] is None
    assert "somas breaker reset" in reason
    CircuitBreaker("ai_api", repo=repo, clock=still, settings=BREAKER_DEFAULTS).reset()
    state, _ = advance(run)
    assert state["status"] == "completed" and server.calls() == 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"max_cost_usd": 0.0001}, "agent_provider.budget.max_cost_usd $0.00"),
        ({"max_tokens": 1000}, "of agent_provider.budget.max_tokens 1000"),
    ],
)
def test_a_budget_stops_the_pipeline_before_it_is_exceeded(
    repo: Path, still: FakeClock, server: FakeAIServer, budget: Any, message: str
) -> None:
    state, _ = advance(start_intake(repo, still, server, [OPENAI], budget=budget))

    assert server.calls() == 0
    assert state["status"] == "failed" and state["stages"]["intake"]["attempts"] == 1
    [letter] = letters(repo)
    assert letter["error"]["kind"] == "budget_exhausted" and message in letter["error"]["message"]
    assert "raise it in .somas/config.yml" in letter["error"]["message"]
    comment = LocalTracker(repo).record(1)["comments"][0]["body"]
    assert "**Stopped:** `budget_exhausted`: `project" in comment


def test_the_budget_counts_what_earlier_stages_spent(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    two = [*live.INTAKE_ONLY, {"name": "specification", "agent": "spec-writer"}]
    # Worst cases: intake ~5,050 tokens (prompt + 4,096 output); specification ~5,090 on top
    # of the ~740 intake really used. 5,500 fits the first and not the second.
    live.configure(repo, server, stages=two, budget={"max_tokens": 5500})
    live.set_chain(repo, "intake-analyst", MODELS[OPENAI])
    live.set_chain(repo, "spec-writer", MODELS[OPENAI])
    live.without_tools(repo, "intake-analyst", "spec-writer")
    run = scenarios.runner(repo, still)
    run.start(scenarios.open_issue(repo), "local:tester")
    state, _ = run.advance("project-1", "local:tester")

    assert server.calls() == 1  # intake fitted; specification could not
    assert state["stages"]["intake"]["status"] == "completed"
    assert (state["status"], state["current_stage"]) == ("failed", "specification")
    assert "the project has used" in letters(repo)[0]["error"]["message"]


def test_a_wait_past_the_run_budget_parks_instead_of_sleeping(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    server.script(OPENAI, rate_limited("20"))  # within max_wait_seconds, but not this run
    run = start_intake(repo, still, server, [OPENAI], timeout=1)
    run.s.run_budget_seconds = 10
    state, _ = advance(run)

    assert still.sleeps == [] and server.calls() == 1
    assert state["status"] == "parked"
    assert scenarios.parked_of(state)["retry_at"] == "2026-01-01T09:00:20.000Z"
    assert events_of(repo, "circuit_breaker_opened")[0]["data"]["reason"] == (
        "rate limited for 20s"
    )
    still.advance(20)
    state, _ = advance(run)
    assert state["status"] == "completed"


def test_github_models_uses_the_workflow_token_and_its_own_parameters(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    live.configure(repo, server, stages=live.INTAKE_ONLY)
    live.set_chain(repo, "intake-analyst", ("github-models", "openai/gpt-4o-mini"))
    live.without_tools(repo, "intake-analyst")
    run = scenarios.runner(repo, still)
    run.start(scenarios.open_issue(repo), "local:tester")
    state, _ = advance(run)

    [request] = server.requests
    assert request.headers["authorization"] == f"Bearer {live.GITHUB_TOKEN}"
    assert request.body["model"] == "openai/gpt-4o-mini" and request.body["max_tokens"] == 4096
    assert state["status"] == "completed"
    assert state["metrics"]["usage"]["cost_usd"] > 0  # priced as gpt-4o-mini


def test_a_content_refusal_is_permanent_and_not_an_outage(
    repo: Path, still: FakeClock, server: FakeAIServer
) -> None:
    server.always(OPENAI, refusal())
    state, _ = advance(start_intake(repo, still, server, [OPENAI]))

    assert server.calls() == 1 and state["status"] == "failed"
    assert breaker_record(repo, OPENAI)["failures"] == 0
    assert "the model refused" in letters(repo)[0]["error"]["message"]


def test_a_missing_sdk_names_the_extra_to_install(
    repo: Path, still: FakeClock, server: FakeAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the extra were not installed
    state, _ = advance(start_intake(repo, still, server, [OPENAI]))

    assert server.calls() == 0 and state["status"] == "failed"
    assert letters(repo)[0]["error"] == {
        "kind": "config",
        "message": "openai/gpt-4o-mini: the openai SDK is not installed; "
        "pip install 'somas-action[openai]'",
        "service": "openai",
    }


@pytest.mark.parametrize("api", BOTH)
def test_an_unreadable_answer_is_a_transient_failure(
    repo: Path, still: FakeClock, server: FakeAIServer, api: str
) -> None:
    server.script(api, garbage(), ok())
    state, _ = advance(start_intake(repo, still, server, [api]))

    assert server.calls(api) == 2 and still.sleeps == [1.0]
    [failed] = events_of(repo, "provider_call_failed")
    assert (
        failed["status"] == "transient"
        and "unreadable response" in failed["data"]["error"]["message"]
    )
    assert state["status"] == "completed"
