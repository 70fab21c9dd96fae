"""A provider outage in the middle of a pipeline: park, then finish once it recovers.

A run while the breakers are still open makes no call; once the providers are back the
operator's `somas resume` (Operator.resume, then advance) finishes the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from somas_action.core.clock import FakeClock
from somas_action.pipeline.operator import Operator
from somas_action.state.local_tracker import LocalTracker
from somas_action.state.store import ProjectStore
from tests import scenarios
from tests.fakes import live
from tests.fakes.ai_server import ANTHROPIC, OPENAI, FakeAIServer, ok, server_error

pytestmark = [pytest.mark.e2e, pytest.mark.fakes]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", live.OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", live.ANTHROPIC_KEY)
    with FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY) as fake:
        yield fake


def test_an_outage_parks_the_pipeline_and_it_finishes_after_recovery(
    repo: Path, server: FakeAIServer
) -> None:
    clock = FakeClock(step_seconds=0)
    live.configure(repo, server)  # the default seven stages and agents: openai, then anthropic
    # The implementer replies with whole files here (the fake's reply for its stage); its tool
    # loop is tested in test_agent_tool_stages.
    live.without_tools(repo, "implementer")
    run = scenarios.runner(repo, clock)
    run.start(scenarios.open_issue(repo), "local:tester")
    server.script(OPENAI, ok(), ok())  # intake and specification are answered ...
    server.always(OPENAI, server_error(502))  # ... then both providers go down
    server.always(ANTHROPIC, server_error(500))

    state, stop = run.advance("project-1", "local:tester")

    assert (state["status"], state["current_stage"]) == ("parked", "architecture")
    assert "project-1 is parked at architecture" in stop.reason and stop.code == 0
    assert [state["stages"][s]["status"] for s in ("intake", "specification")] == [
        "completed",
        "completed",
    ]
    assert state["stages"]["architecture"]["attempts"] == 1  # the deferred attempt is not used up
    assert (server.calls(OPENAI), server.calls(ANTHROPIC)) == (2 + 5, 5)
    assert {s: b["state"] for s, b in state["circuit_breakers"].items()} == {
        "openai": "open",
        "anthropic": "open",
    }
    info = state["recovery_info"]
    assert info["resume_stage"] == "architecture"
    checkpoint = info["last_successful_checkpoint"]
    assert checkpoint is not None and checkpoint.endswith("-architecture")
    # openai opened after 9 s of (fake) waits: it may be probed 60 s later, first.
    assert scenarios.parked_of(state)["retry_at"] == "2026-01-01T09:01:09.000Z"
    issue = LocalTracker(repo).record(1)
    assert {"somas:parked", "somas:stage:architecture"} <= set(issue["labels"])
    assert "is **parked**" in issue["comments"][0]["body"]

    clock.advance(30)
    state, _ = run.advance("project-1", "local:tester")  # still open: no call at all
    assert server.calls() == 12 and state["status"] == "parked"

    server.always(OPENAI, ok())
    server.always(ANTHROPIC, ok())
    clock.advance(30)
    resumed = Operator(run).resume("project-1", None, "local:ops")  # what `somas resume` does
    assert resumed["recovery_info"]["parked"] is None
    state, stop = run.advance("project-1", "local:ops")

    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert server.stages().count("intake") == 1  # completed stages were not repeated
    assert server.stages().count("specification") == 1
    assert [
        state["stages"][s]["attempts"] for s in ("intake", "specification", "architecture")
    ] == [1, 1, 1]  # resume restarts the parked stage afresh
    assert state["circuit_breakers"]["openai"]["state"] == "closed"
    assert state["recovery_info"]["parked"] is None
    assert state["dead_letter_count"] == 0
    assert scenarios.schema_problems(repo) == []
    assert (
        ProjectStore(repo, "project-1").reconstruct_text()
        == (scenarios.project_dir(repo) / "state.json").read_text()
    )
