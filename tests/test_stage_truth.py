"""What stages see and decide, as pure functions and plain files: the verdict gate, the review
round trip, bounded inputs for the agents, the run_tests report, closing a failed project's
pull request, and the conversation's records as events."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from somas_action.core import review_rounds, tool_events
from somas_action.core.conversation import (
    ConversationStarted,
    Record,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    TurnRecord,
    tool_call_record,
)
from somas_action.core.domain import Event, EventDraft, State
from somas_action.core.events import EventType
from somas_action.core.gates import GateInputs
from somas_action.core.gates import tests_passed as verdict_gate
from somas_action.core.projection import apply_all
from somas_action.core.settings import QualityGate
from somas_action.core.unittest_output import module_file, unittest_cases, unittest_summary
from somas_action.pipeline.stage_inputs import test_results_summary as summary_for_agent
from somas_action.pipeline.tests_tool import report_for_model
from somas_action.state.git import GitWorkspace
from somas_action.state.local_tracker import LocalTracker
from somas_action.state.scratch import ScratchTree, prune_stale
from tests import scenarios
from tests.scenarios import CTX

CONFIG = scenarios.config_section()
REVIEW = CONFIG.stage("review")


def sealed(state: State, drafts: list[EventDraft]) -> State:
    start = state["metrics"]["events"] + 1
    return apply_all(state, scenarios.sealed(drafts, start))


def at_review(state: State) -> State:
    """A project whose current stage is review (as after validation completed)."""
    state["current_stage"] = "review"
    for stage in ("intake", "specification", "architecture", "implementation", "validation"):
        state["stages"][stage]["status"] = "completed"
    return state


# -- the tests_passed gate reads the verdict ---------------------------------------------------


def results(passed: bool, failed: int = 0, source: str = "output") -> dict[str, Any]:
    checks = [
        {"name": "command_completed", "passed": True, "detail": "ran"},
        {"name": "no_regressions", "passed": passed, "detail": "1 regression(s): t.a"},
    ]
    return {
        "verdict": {"passed": passed, "checks": checks},
        "regressions": [] if passed else [{"test": "t.a"}],
        "total": 5,
        "passed": 5 - failed,
        "failed": failed,
        "errors": 0,
        "result_source": source,
    }


def gate(min_tests: int = 1) -> QualityGate:
    return QualityGate("tests_passed", "tests-pass", None, None, min_tests, None)


def test_tests_already_failing_on_base_do_not_fail_the_gate() -> None:
    ok, detail = verdict_gate(gate(), GateInputs({}, set(), results(True, failed=2)))
    assert ok and detail == (
        "3/5 passed, 2 failed, no regressions; the 2 failing already failed on base "
        "(need >= 1 tests)"
    )


def test_a_regression_fails_the_gate_with_the_verdicts_reason() -> None:
    ok, detail = verdict_gate(gate(), GateInputs({}, set(), results(False, failed=1)))
    assert not ok and detail == "4/5 passed, 1 failed; no_regressions: 1 regression(s): t.a"


def test_min_tests_counts_only_where_the_runner_counts() -> None:
    assert not verdict_gate(gate(6), GateInputs({}, set(), results(True)))[0]
    only_exit_code = {**results(True, source="exit_code"), "total": 0, "passed": 0}
    assert verdict_gate(gate(6), GateInputs({}, set(), only_exit_code))[0]


# -- request_changes: back to implementation, bounded ------------------------------------------


def request(state: State, comments: list[str]) -> State:
    output = {"summary": "needs work", "verdict": "request_changes", "comments": comments}
    drafts = review_rounds.changes_requested(
        state,
        REVIEW,
        1,
        output=output,
        output_digest="0" * 64,
        artifacts=[],
        gate_results=[],
        ctx=CTX,
    )
    return sealed(state, drafts)


def test_request_changes_goes_back_to_implementation_with_the_comments() -> None:
    state = at_review(scenarios.created_state(CONFIG))
    output = {"summary": "x", "verdict": "request_changes"}
    assert review_rounds.asks_for_changes(state, REVIEW, output)
    assert not review_rounds.asks_for_changes(state, REVIEW, {**output, "verdict": "approve"})

    state = request(state, ["handle emoji"])

    assert (state["status"], state["current_stage"]) == ("in_progress", "implementation")
    assert state["stages"]["implementation"]["status"] == "pending"
    assert state["stages"]["architecture"]["status"] == "completed"
    assert state.get("changes_requested") == {
        "stage": "review",
        "back_to": "implementation",
        "round": 1,
        "max_rounds": 3,
        "summary": "needs work",
        "comments": ["handle emoji"],
        "requested_at": CTX.ts,
    }
    assert state["metrics"].get("review_rounds") == 1


def test_rounds_count_until_the_reviewer_approves_and_are_bounded() -> None:
    state = at_review(scenarios.created_state(CONFIG))
    for number in (1, 2, 3):
        assert review_rounds.next_round(state, REVIEW) == number
        state = at_review(request(state, [f"round {number}"]))
    assert review_rounds.next_round(state, REVIEW) == 4 > REVIEW.max_retries
    message = review_rounds.exhausted_message(REVIEW, {"summary": "still wrong"})
    assert "after 3 rounds" in message and "somas restart --stage implementation" in message

    opened = scenarios.sealed(
        [_draft(EventType.HUMAN_GATE_OPENED, "review")], state["metrics"]["events"] + 1
    )
    state = apply_all(state, opened)
    assert state.get("changes_requested") is None  # the reviewer approved: rounds start over
    assert review_rounds.next_round(state, REVIEW) == 1


def _draft(event_type: EventType, stage: str) -> EventDraft:
    return {
        "v": 1,
        "id": "evt-" + "0" * 20,
        "ts": CTX.ts,
        "project_id": "project-3",
        "event_type": event_type,
        "stage": stage,
        "from_stage": stage,
        "to_stage": stage,
        "status": "waiting",
        "attempt": 1,
        "actor": "local:t",
        "data": {},
    }


# -- bounded inputs, and what run_tests shows the model ------------------------------------------


def test_test_results_for_an_agent_keep_regressions_first_and_fit_the_budget() -> None:
    failure = {"test": "t.f", "message": "boom", "output": "x" * 900}
    data = {
        "regressions": [{"test": "t.r", "message": "broke"}],
        "verdict": {"passed": False, "checks": []},
        "total": 50,
        "passed": 10,
        "failed": 40,
        "failures": [dict(failure, test=f"t.f{i}") for i in range(40)],
        "output_tail": "y" * 5000,
    }
    summary = summary_for_agent(data, 6000)
    assert next(iter(summary)) == "regressions"
    assert len(json.dumps(summary)) <= 6000
    assert summary["failures_left_out"] == 40 - len(summary["failures"]) > 0
    assert "output_tail" not in summary


def test_the_run_tests_report_leaves_out_what_changes_between_runs() -> None:
    trace = 'File "/tmp/somas-run-abc123/tree/src/m.py", line 3, in f'
    artifact = {
        "verdict": {"passed": False, "checks": [{"name": "no_regressions", "passed": False,
                                                   "detail": "1 regression(s): t.a"}]},
        "regressions": [{"test": "t.a", "branch": "failed", "message": trace}],
        "total": 2, "passed": 1, "failed": 1, "errors": 0, "skipped": 0,
        "failures": [{"test": "t.a", "message": "AssertionError", "output": trace}],
        "problem": "", "timed_out": None, "duration_seconds": 0.42, "commit": "c" * 40,
    }  # fmt: skip
    report = report_for_model(artifact)
    assert report["regressions"] == [
        {"test": "t.a", "now": "failed", "message": 'File "src/m.py", line 3, in f'}
    ]
    assert report["why"] == ["no_regressions: 1 regression(s): t.a"]
    assert "duration_seconds" not in report and "commit" not in report


# -- unittest's verbose output ----------------------------------------------------------------

UNITTEST = """\
test_ok (tests.test_a.ATest.test_ok) ... ok
test_fail (tests.test_a.ATest) ... FAIL
test_skip (tests.test_a.ATest.test_skip) ... skipped 'no'

======================================================================
FAIL: test_fail (tests.test_a.ATest.test_fail)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/x/tests/test_a.py", line 4, in test_fail
AssertionError: 'a' != 'b'
- a
+ b

----------------------------------------------------------------------
Ran 3 tests in 0.001s

FAILED (failures=1, skipped=1)
"""


def test_unittest_results_are_read_per_test_in_either_pythons_format() -> None:
    cases = {c.test: c for c in unittest_cases(UNITTEST)}
    assert {t: c.outcome for t, c in cases.items()} == {
        "tests.test_a.ATest.test_ok": "passed",
        "tests.test_a.ATest.test_fail": "failed",
        "tests.test_a.ATest.test_skip": "skipped",
    }
    failed = cases["tests.test_a.ATest.test_fail"]
    assert (failed.file, failed.message) == ("tests/test_a.py", "AssertionError: 'a' != 'b'")
    assert "line 4, in test_fail" in failed.detail
    summary = unittest_summary(UNITTEST)
    assert summary is not None and (summary.passed, summary.failed, summary.skipped) == (1, 1, 1)
    assert module_file("test_mod.Case.test_x") == "test_mod.py"
    assert module_file("lonely") is None


# -- closing a failed project's pull request (local tracker) -------------------------------------


def test_the_local_tracker_closes_a_pull_request_and_new_work_opens_it_again(
    somas_folder: Path,
) -> None:
    tracker = LocalTracker(somas_folder)
    assert tracker.close_pull_request("somas/project-1", "failed") is None  # none yet
    tracker.upsert_pull_request("somas/project-1", "main", "T", "B")

    assert tracker.close_pull_request("somas/project-1", "failed at validation") is not None
    [pull] = json.loads((somas_folder / ".somas/tracker/pulls.json").read_text())
    assert (pull["state"], pull["closed_reason"]) == ("closed", "failed at validation")
    assert tracker.close_pull_request("somas/project-1", "again") is None  # already closed

    tracker.upsert_pull_request("somas/project-1", "main", "T", "B2")
    [pull] = json.loads((somas_folder / ".somas/tracker/pulls.json").read_text())
    assert pull["state"] == "open" and "closed_reason" not in pull


# -- git: executable bits, and worktrees a killed run left behind --------------------------------


def test_a_changed_executable_stays_executable(repo: Path) -> None:
    script = repo / "tests" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    scenarios.git(repo, "add", "-A")
    scenarios.git(repo, "commit", "-q", "-m", "a script")
    workspace = GitWorkspace(repo)

    commit = workspace.commit_files(
        "somas/project-1", [("tests/run.sh", "#!/bin/sh\nexit 0\n")], "m"
    )

    assert workspace.file_modes(commit)["tests/run.sh"] == "100755"
    new = workspace.commit_files("somas/project-1", [("tests/new.sh", "x\n")], "m")
    assert workspace.file_modes(new)["tests/new.sh"] == "100644"


def test_a_worktree_left_by_a_dead_run_is_pruned_and_a_live_ones_kept(repo: Path) -> None:
    workspace = GitWorkspace(repo)
    live = ScratchTree.open(workspace, "main")
    dead = ScratchTree.open(workspace, "main")
    host = socket.gethostname()
    scenarios.git(repo, "worktree", "unlock", str(dead.root))
    scenarios.git(repo, "worktree", "lock", "--reason", f"somas-tools pid 999999999 host {host}",
                  str(dead.root))  # fmt: skip

    removed = prune_stale(workspace)

    assert removed == [dead.root]
    assert not dead.root.parent.exists()
    listed = scenarios.git(repo, "worktree", "list", "--porcelain")
    assert str(live.root) in listed and str(dead.root) not in listed
    assert f"pid {os.getpid()}" in listed
    live.close()
    assert scenarios.git(repo, "worktree", "list").count("\n") == 0


# -- a conversation as events, and back --------------------------------------------------------


def conversation() -> list[Record]:
    start = ConversationStarted("implementation", "implementer", ("read_file", "finish"),
                                "sys", "user", "a" * 40, "b" * 40)  # fmt: skip
    call = ToolCall("c1", "read_file", {"path": "src/m.py"})
    turn = TurnRecord(1, "openai", "gpt-4o", "", (call,), "tool_calls", 10, 2, 0.0001, 40)
    done = tool_call_record(1, ToolResult("c1", "read_file", "1| x", False), call, "b" * 40)
    return [start, turn, done]


def as_events(state: State, records: list[Record]) -> tuple[list[Event], dict[str, str]]:
    events: list[Event] = []
    outputs: dict[str, str] = {}
    for record in records:
        drafts = tool_events.record_drafts(state, "implementation-implementer-1", record, 1, CTX)
        sealed_events = scenarios.sealed(drafts, state["metrics"]["events"] + 1)
        state = apply_all(state, sealed_events)
        events += sealed_events
        if isinstance(record, ToolCallRecord):
            artifact = tool_events.tool_artifact("implementation-implementer-1", record)
            outputs[artifact] = record.output
    return events, outputs


def test_a_conversations_events_give_back_its_records_and_count_as_usage() -> None:
    state = scenarios.created_state(CONFIG)
    state["current_stage"] = "implementation"
    records = conversation()
    events, outputs = as_events(state, records)

    assert [e["event_type"] for e in events] == [
        "agent_conversation_started",
        "agent_turn_recorded",
        "agent_tool_called",
    ]
    assert "output" not in events[2]["data"]
    assert events[2]["data"]["artifact"] == (
        "tool-calls/implementation-implementer-1/tool-001-c1.txt"
    )
    rebuilt = tool_events.records_of(events, lambda artifact, sha: outputs[artifact])
    assert rebuilt == records
    folded = apply_all(state, events)
    assert folded["metrics"].get("agent_turns") == 1
    assert folded["metrics"].get("tool_calls") == 1
    usage = folded["metrics"].get("usage")
    assert usage is not None and usage["by_model"]["openai/gpt-4o"]["input_tokens"] == 10
    opened = tool_events.open_conversation(events, "implementation", "implementer")
    assert opened is not None and opened.expected_head == "a" * 40
    assert tool_events.tool_loop_detail(events[2]) == "  read_file src/m.py -> ok"


@pytest.mark.parametrize(
    ("resumable", "commit", "open_after"),
    [(True, "c" * 40, "c" * 40), (False, None, None)],
)
def test_a_stop_leaves_the_conversation_open_at_its_commit_unless_it_is_closed(
    resumable: bool, commit: str | None, open_after: str | None
) -> None:
    state = scenarios.created_state(CONFIG)
    events, _ = as_events(state, conversation())
    data = {"turns": 1, "reason": "r", "kind": "turn_limit", "resumable": resumable,
            "commit": commit, "files": [], "deleted": []}  # fmt: skip
    stop = tool_events.ended_drafts(state, "implementation-implementer-1", 1, data, CTX,
                                    finished=False)  # fmt: skip
    events += scenarios.sealed(stop, len(events) + 2)
    opened = tool_events.open_conversation(events, "implementation", "implementer")
    assert (opened.expected_head if opened else None) == open_after
    assert tool_events.conversation_id(events, "implementation", "implementer") == (
        "implementation-implementer-2"
    )


def test_the_status_comment_says_what_the_agents_did_and_what_a_reviewer_asked() -> None:
    from somas_action.core.report import status_markdown

    state = scenarios.created_state(CONFIG)
    assert "Agents' tools" not in status_markdown(state)
    state["metrics"]["agent_turns"] = 7
    state["metrics"]["tool_calls"] = 8
    state = request(at_review(state), ["handle @everyone's emoji"])
    text = status_markdown(state)
    assert "**Agents' tools:** 7 turns, 8 tool calls, each in the log" in text
    assert "`somas replay project-3`" in text
    assert "**Changes requested** by review (round 1 of 3): `handle @everyone's emoji`" in text


@pytest.mark.parametrize(
    ("back_to", "still_open"), [("architecture", False), ("implementation", True)]
)
def test_a_conversation_sent_back_to_an_earlier_stage_is_over_to_its_own_stage_it_goes_on(
    back_to: str, still_open: bool
) -> None:
    state = scenarios.created_state(CONFIG)
    events, _ = as_events(state, conversation())
    restart = dict(_draft(EventType.STAGE_RESTARTED, back_to), to_stage=back_to)
    events += scenarios.sealed([restart], len(events) + 2)  # type: ignore[list-item]
    earlier = ["intake", "specification", "architecture"]
    opened = tool_events.open_conversation(events, "implementation", "implementer", earlier)
    assert (opened is not None) == still_open
