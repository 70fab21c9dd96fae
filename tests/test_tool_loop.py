"""The provider-neutral tool loop: bounds that keep the work, records that resume it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.schemas import problems
from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.budget import Budget, BudgetGuard
from somas_action.core.clock import FakeClock
from somas_action.core.conversation import (
    NUDGE,
    AssistantTurn,
    ConversationStarted,
    Record,
    ToolCall,
    ToolCallRecord,
    TurnRecord,
    UserText,
    record_from_json,
    recording_to_json,
    resume,
)
from somas_action.core.error_kinds import BUDGET, RATE_LIMITED, RUN_DEADLINE, TURN_LIMIT
from somas_action.core.errors import ProviderError
from somas_action.core.settings import BudgetLimits
from somas_action.core.toolloop import (
    Finished,
    LoopLimits,
    LoopOutcome,
    Stopped,
    ToolExecution,
    run_tool_loop,
)
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from tests import tool_fixtures as lib
from tests.fakes.ai_server import Calls, ToolContext

SETTINGS = lib.tool_settings(("src/", "tests/"))
PRICE = (2.5, 10.0)


class CountingTools(RepositoryTools):
    """The real tools, counting what they execute (to prove nothing runs twice)."""

    executed: list[str]

    def execute(self, call: ToolCall) -> ToolExecution:
        self.executed.append(call.id)
        return super().execute(call)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return lib.make_library(tmp_path / "ledger")


@pytest.fixture
def scratch(library: Path) -> Iterator[ScratchTree]:
    with ScratchTree.open(GitWorkspace(library), "main") as tree:
        yield tree


def fresh(scratch: ScratchTree) -> tuple[CountingTools, list[Record]]:
    specs = tool_specs(EDIT_TOOLS, edits=True)
    tools = CountingTools(scratch, specs, SETTINGS, run_tests=lib.run_pytest, require_change=True)
    tools.executed = []
    start = lib.started(scratch.commit, scratch.base_tree(), [s.name for s in specs])
    return tools, [start]


def loop(
    model: lib.ScriptedModel,
    tools: RepositoryTools,
    records: list[Record],
    clock: FakeClock | None = None,
    budget: Budget | None = None,
    **limits: Any,
) -> tuple[LoopOutcome, list[Record]]:
    reported: list[Record] = []
    outcome = run_tool_loop(
        model,
        tools,
        records,
        LoopLimits(**{"max_turns": 20, "price": PRICE, **limits}),
        clock or FakeClock(),
        BudgetGuard(budget, {}),
        reported.append,
    )
    return outcome, reported


def of_type(records: list[Record], kind: type) -> list[Any]:
    return [r for r in records if isinstance(r, kind)]


@pytest.mark.subprocess
def test_the_scripted_change_finishes_with_a_small_diff(scratch: ScratchTree) -> None:
    tools, records = fresh(scratch)
    outcome, reported = loop(lib.ScriptedModel(lib.discount_policy), tools, records)

    assert isinstance(outcome, Finished) and outcome.turns == 7
    assert outcome.output["commit_message"] == "apply_discount: refuse a percent above 100"
    assert outcome.output["summary"].startswith("Refuse a percent above 100; suite: 5 passed in ")
    assert [c.path for c in outcome.changes] == [lib.MODULE, lib.NEW_TEST]
    module = outcome.changes[0].content
    assert module == lib.rules_module().replace(
        '        raise ValueError("percent must not be negative")\n',
        '        raise ValueError("percent must not be negative")\n' + lib.GUARD,
    )
    assert reported == records[1:]  # every record was reported as it happened
    assert [type(r).__name__ for r in records[1:3]] == ["TurnRecord", "ToolCallRecord"]
    assert len(of_type(records, TurnRecord)) == 7 and len(of_type(records, ToolCallRecord)) == 7
    run = of_type(records, ToolCallRecord)[5]
    assert run.name == "run_tests" and '"passed": 5' in run.output
    assert '"exit_code": 0' in run.output
    assert sum(t.cost_usd for t in of_type(records, TurnRecord)) == pytest.approx(7 * 0.0035)


@pytest.mark.subprocess
def test_the_recording_matches_its_schema_and_round_trips(scratch: ScratchTree) -> None:
    tools, records = fresh(scratch)
    loop(lib.ScriptedModel(lib.discount_policy), tools, records)
    recording = recording_to_json(records)
    assert problems("conversation", recording) == []
    assert [record_from_json(r) for r in recording["records"]] == records
    event = of_type(records, ToolCallRecord)[0].event_data()
    assert "output" not in event and event["artifact"] == "tool-001-t1_0.txt"


@pytest.mark.subprocess
def test_the_turn_limit_stops_with_the_work_and_a_resume_continues(scratch: ScratchTree) -> None:
    tools, records = fresh(scratch)
    outcome, _ = loop(lib.ScriptedModel(lib.discount_policy), tools, records, max_turns=3)

    assert isinstance(outcome, Stopped) and (outcome.kind, outcome.turns) == (TURN_LIMIT, 3)
    assert "tool_loop.max_turns" in outcome.reason
    assert [c.path for c in outcome.changes] == [lib.MODULE]  # the replace is kept

    model = lib.ScriptedModel(lib.discount_policy)
    outcome, reported = loop(model, tools, records, max_turns=20)
    assert isinstance(outcome, Finished) and outcome.turns == 7
    assert len(model.seen) == 4  # turns 4..7: none repeated
    first = model.seen[0]
    assert sum(isinstance(m, AssistantTurn) for m in first.messages) == 3
    assert [r.turn for r in of_type(reported, TurnRecord)] == [4, 5, 6, 7]
    assert len(tools.executed) == 7


def test_the_deadline_stops_before_a_turn_that_cannot_end_in_time(scratch: ScratchTree) -> None:
    clock = FakeClock(step_seconds=0)
    model = lib.ScriptedModel(lib.discount_policy)
    model.clock_step = (clock, 60.0)
    tools, records = fresh(scratch)
    deadline = clock.monotonic() + 150
    outcome, _ = loop(model, tools, records, clock, deadline=deadline, reserve_seconds=40)

    assert isinstance(outcome, Stopped) and outcome.kind == RUN_DEADLINE
    # Each turn takes 60 s; turn 3 would start at 120 s and might need 40 s: past 150 s.
    assert outcome.turns == 2 and len(model.seen) == 2
    assert outcome.reason == "no time left in this run for turn 3; continuing in the next run"


def test_the_budget_is_checked_before_every_turn(scratch: ScratchTree) -> None:
    tools, records = fresh(scratch)
    model = lib.ScriptedModel(lib.discount_policy)
    budget = Budget(BudgetLimits(max_cost_usd=None, max_tokens=3 * 1100 + 2000), 0.0, 0)
    outcome, _ = loop(model, tools, records, budget=budget, max_output_tokens=100)

    assert isinstance(outcome, Stopped) and outcome.kind == BUDGET
    # 4 turns of 1,100 tokens spent; the 5th could take the prompt's estimate + 100 more.
    assert outcome.reason.startswith("project token budget: the next call to openai/gpt-4o")
    assert "the project has used 4400 of agent_provider.budget.max_tokens 5300" in outcome.reason
    assert outcome.turns == 4 and len(model.seen) == 4  # no request past the budget
    assert [c.path for c in outcome.changes] == [lib.MODULE]


@pytest.mark.subprocess
def test_a_provider_error_stops_with_its_kind_and_wait(scratch: ScratchTree) -> None:
    limited = ProviderError("openai/gpt-4o: rate limited", kind=RATE_LIMITED, retry_after=30.0)
    model = lib.ScriptedModel(lib.discount_policy, error_at={4: limited})
    tools, records = fresh(scratch)
    outcome, _ = loop(model, tools, records)

    assert isinstance(outcome, Stopped)
    assert (outcome.kind, outcome.retry_after, outcome.turns) == (RATE_LIMITED, 30.0, 3)
    assert [c.path for c in outcome.changes] == [lib.MODULE]
    outcome, _ = loop(model, tools, records)
    assert isinstance(outcome, Finished) and outcome.turns == 7


@pytest.mark.subprocess
def test_a_turn_without_tool_calls_is_nudged_and_counted(scratch: ScratchTree) -> None:
    def chatty(ctx: ToolContext) -> Calls:
        if ctx.turn == 1:
            return Calls([], text="I will look around first.")
        return lib.discount_policy(ToolContext(ctx.turn - 1, ctx.exchanges, ctx.tools, ctx.user))

    tools, records = fresh(scratch)
    model = lib.ScriptedModel(chatty)
    outcome, _ = loop(model, tools, records)
    assert isinstance(outcome, Finished) and outcome.turns == 8
    assert model.seen[1].messages[1:3] == [
        AssistantTurn("I will look around first.", ()),
        UserText(NUDGE),
    ]
    assert resume(records).transcript.messages[1:3] == model.seen[1].messages[1:3]


def test_a_crash_mid_turn_resumes_the_owed_calls_only(scratch: ScratchTree) -> None:
    def two_at_once(ctx: ToolContext) -> Calls:
        if ctx.turn == 1:
            return Calls(
                [
                    ("create_file", {"path": "src/a.py", "content": "A = 1\n"}),
                    ("create_file", {"path": "src/b.py", "content": "B = 1\n"}),
                ]
            )
        return Calls([("finish", {"summary": "two files", "commit_message": "add a and b"})])

    tools, records = fresh(scratch)
    loop(lib.ScriptedModel(two_at_once), tools, records)
    # The process died after the first call of turn 1 was recorded: keep the log up to there.
    crashed = records[:3]
    assert [type(r).__name__ for r in crashed] == [
        "ConversationStarted",
        "TurnRecord",
        "ToolCallRecord",
    ]
    state = resume(crashed)
    assert [c.id for c in state.pending] == ["t1_1"] and [r.call_id for r in state.answered] == [
        "t1_0"
    ]

    with ScratchTree.open(GitWorkspace(scratch.workspace.repo), "main") as later:
        again, _ = fresh(later)
        model = lib.ScriptedModel(two_at_once)
        outcome, reported = loop(model, again, crashed)
        assert isinstance(outcome, Finished)
        assert again.executed == ["t1_1", "t2_0"]  # t1_0 was recorded: never run again
        assert len(model.seen) == 1  # turn 1 was not asked again
        assert [c.path for c in outcome.changes] == ["src/a.py", "src/b.py"]
        assert [r.turn for r in of_type(reported, TurnRecord)] == [2]


@pytest.mark.subprocess
def test_a_finished_conversation_resumes_to_its_outcome_without_a_call(
    scratch: ScratchTree,
) -> None:
    tools, records = fresh(scratch)
    first, _ = loop(lib.ScriptedModel(lib.discount_policy), tools, records)
    model = lib.ScriptedModel(lib.discount_policy)
    again, reported = loop(model, tools, records)
    assert again == first and model.seen == [] and reported == []


def test_resume_refuses_records_without_a_start() -> None:
    with pytest.raises(ValueError, match="start with conversation_started"):
        resume([])
    assert isinstance(
        lib.started("a" * 40, "b" * 40, []),
        ConversationStarted,
    )
