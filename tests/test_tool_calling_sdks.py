"""Tool calling through the real `openai` and `anthropic` SDKs against the fake AI server.

A scripted model makes a real change in the ledger fixture, whose module is far larger than
the output cap, through both APIs: the change lands as a small diff and the suite passes. A
429 with Retry-After and a SIGKILL in the middle of the loop both end with the work kept and
the conversation continued, not restarted; the request log proves it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.budget import BudgetGuard
from somas_action.core.clock import FakeClock
from somas_action.core.conversation import (
    Record,
    ToolCallRecord,
    record_from_json,
    record_to_json,
)
from somas_action.core.error_kinds import AUTH, RATE_LIMITED
from somas_action.core.toolloop import Finished, LoopLimits, LoopOutcome, Stopped, run_tool_loop
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from tests import tool_fixtures as lib
from tests.fakes import live
from tests.fakes.ai_server import ANTHROPIC, OPENAI, FakeAIServer, Request, rate_limited
from tests.tool_child import model_for

BOTH = [OPENAI, ANTHROPIC]
BRANCH = "somas/project-1"
# +2 lines in the 3,000-line module, and the new test file.
SMALL_DIFF = [f"2\t0\t{lib.MODULE}", f"{lib.NEW_TEST_TEXT.count(chr(10))}\t0\t{lib.NEW_TEST}"]


@pytest.fixture
def server() -> Iterator[FakeAIServer]:
    with FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY) as fake:
        fake.policy(OPENAI, lib.discount_policy)
        fake.policy(ANTHROPIC, lib.discount_policy)
        yield fake
        assert fake.violations == []


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return lib.make_library(tmp_path / "ledger")


def run(
    server: FakeAIServer, api: str, library: Path, records: list[Record] | None, ref: str = "main"
) -> tuple[LoopOutcome, list[Record]]:
    """One process's worth of loop: a new client, a new worktree, the records so far."""
    with ScratchTree.open(GitWorkspace(library), ref) as scratch:
        specs = tool_specs(EDIT_TOOLS, edits=True)
        tools = RepositoryTools(
            scratch,
            specs,
            lib.tool_settings(("src/", "tests/")),
            lib.run_pytest,
            require_change=True,
        )
        if records is None:
            records = [lib.started(scratch.commit, scratch.base_tree(), [s.name for s in specs])]
        outcome = run_tool_loop(
            model_for(api, server.url),
            tools,
            records,
            LoopLimits(max_turns=20, price=(2.5, 10.0)),
            FakeClock(),
            BudgetGuard(None, {}),
            lambda record: None,
        )
        return outcome, records


def commit(library: Path, outcome: Finished | Stopped, message: str) -> str:
    """What phase B does at finish or at a stop: commit the changed files to the branch."""
    files = [(c.path, c.content) for c in outcome.changes]
    return GitWorkspace(library).commit_files(BRANCH, files, message)


def tool_requests(server: FakeAIServer, api: str) -> list[Request]:
    return [r for r in server.requests if r.api == api]


def assistant_turns(api: str, body: dict[str, Any]) -> int:
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


@pytest.mark.subprocess
@pytest.mark.fakes
@pytest.mark.parametrize("api", BOTH)
def test_a_change_in_a_module_larger_than_the_output_cap_lands_as_a_small_diff(
    server: FakeAIServer, library: Path, api: str
) -> None:
    outcome, records = run(server, api, library, None)

    assert isinstance(outcome, Finished) and outcome.turns == 7
    commit(library, outcome, outcome.output["commit_message"])
    stat = lib.git(library, "diff", "--numstat", f"main..{BRANCH}")
    assert stat.splitlines() == SMALL_DIFF
    with ScratchTree.open(GitWorkspace(library), BRANCH) as branch:
        report = lib.run_pytest(branch.root)
    assert (report["exit_code"], report["passed"]) == (0, 5)

    requests = tool_requests(server, api)
    assert [r.answer for r in requests] == ["policy"] * 7
    module_chars = len(lib.rules_module())
    sizes = [len(json.dumps(r.body)) for r in requests]
    assert max(sizes) < module_chars / 4  # the module never travels whole
    assert sum(sizes) < module_chars  # nor in total over the 7 turns
    body = requests[0].body
    if api == OPENAI:
        assert body["tool_choice"] == "required"
        assert [t["function"]["name"] for t in body["tools"]] == list(EDIT_TOOLS)
        schema = body["tools"][3]["function"]["parameters"]
    else:
        assert body["tool_choice"] == {"type": "any"}
        assert [t["name"] for t in body["tools"]] == list(EDIT_TOOLS)
        schema = body["tools"][3]["input_schema"]
    assert schema["required"] == ["path", "old", "new"]  # one source for both SDKs
    assert [assistant_turns(api, r.body) for r in requests] == list(range(7))
    calls = [r for r in records if isinstance(r, ToolCallRecord)]
    assert [c.name for c in calls] == [
        "search",
        "read_file",
        "replace_in_file",
        "list_files",
        "create_file",
        "run_tests",
        "finish",
    ]
    assert not any(c.is_error for c in calls)


@pytest.mark.subprocess
@pytest.mark.fakes
@pytest.mark.parametrize("api", BOTH)
def test_a_429_with_retry_after_keeps_the_work_and_the_next_run_continues(
    server: FakeAIServer, library: Path, api: str
) -> None:
    first, records = run_until_429(server, api, library)

    assert isinstance(first, Stopped)
    assert (first.kind, first.retry_after, first.turns) == (RATE_LIMITED, 30.0, 3)
    commit(library, first, "somas: work so far (parked: rate limited)")
    saved = [json.loads(json.dumps(record_to_json(r))) for r in records]

    # The next run: a new process (new SDK client, new worktree of the branch), the records.
    again, _ = run(server, api, library, [record_from_json(r) for r in saved], ref=BRANCH)
    assert isinstance(again, Finished) and again.turns == 7
    requests = tool_requests(server, api)
    assert [r.answer for r in requests] == ["policy"] * 3 + ["rate_limited"] + ["policy"] * 4
    # The first request after the park carries the three recorded turns: resumed, not restarted.
    assert [assistant_turns(api, r.body) for r in requests] == [0, 1, 2, 3, 3, 4, 5, 6]
    assert requests[4].body["messages"] == requests[3].body["messages"]
    commit(library, again, again.output["commit_message"])
    stat = lib.git(library, "diff", "--numstat", f"main..{BRANCH}")
    assert stat.splitlines() == SMALL_DIFF


def run_until_429(
    server: FakeAIServer, api: str, library: Path
) -> tuple[LoopOutcome, list[Record]]:
    """The first run; the fourth request is answered 429 with Retry-After: 30."""
    original = server.next_action

    def fourth_is_limited(which: str) -> Any:
        if which == api and len(tool_requests(server, api)) == 3:
            server.next_action = original  # type: ignore[method-assign]
            return rate_limited("30")
        return original(which)

    server.next_action = fourth_is_limited  # type: ignore[method-assign,assignment]
    return run(server, api, library, None)


@pytest.mark.subprocess
@pytest.mark.fakes
@pytest.mark.parametrize("api", BOTH)
def test_a_sigkill_mid_loop_continues_from_the_last_recorded_step(
    server: FakeAIServer, library: Path, api: str, tmp_path: Path
) -> None:
    log = tmp_path / "records.jsonl"
    child = subprocess.run(
        [sys.executable, "-m", "tests.tool_child", str(library), server.url, api, str(log),
         str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr[-2000:]
    records = [record_from_json(json.loads(line)) for line in log.read_text().splitlines()]
    # Killed while running the tests of turn 6: its turn is recorded, its result is not.
    assert [type(r).__name__ for r in records[-2:]] == ["ToolCallRecord", "TurnRecord"]
    assert len(tool_requests(server, api)) == 6

    outcome, _ = run(server, api, library, records)
    assert isinstance(outcome, Finished) and outcome.turns == 7
    requests = tool_requests(server, api)
    assert len(requests) == 7  # only turn 7 was asked: turn 6's run_tests ran from the record
    assert assistant_turns(api, requests[-1].body) == 6
    calls = [r for r in records if isinstance(r, ToolCallRecord)]
    assert [c.name for c in calls] == [
        "search",
        "read_file",
        "replace_in_file",
        "list_files",
        "create_file",
        "run_tests",
        "finish",
    ]
    assert len({c.call_id for c in calls}) == 7
    module = next(c.content for c in outcome.changes if c.path == lib.MODULE)
    assert module is not None and module.count("percent must not exceed 100") == 1


@pytest.mark.fakes
@pytest.mark.parametrize("api", BOTH)
def test_a_refused_key_stops_with_auth_and_no_work_lost(
    server: FakeAIServer, library: Path, api: str
) -> None:
    server.keys[api] = "another-key"
    outcome, records = run(server, api, library, None)
    assert isinstance(outcome, Stopped) and outcome.kind == AUTH
    assert outcome.turns == 0 and outcome.changes == () and len(records) == 1
    assert live.OPENAI_KEY not in outcome.reason and live.ANTHROPIC_KEY not in outcome.reason
