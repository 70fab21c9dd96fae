"""Figures: the tool loop vs a whole-file reply, on the demo and on a large-module fixture.

Run from the repository root:

    .venv/bin/python bench/toolloop.py

The demo: the real pipeline (seven stages, every agent live against the fake AI server) on the
demo repository, the implementer being the scripted model of `tests/demo_recording.py`; then the
same pipeline with the implementer answering with whole files in one structured reply. Per
stage: requests, characters sent, tokens and cost at list prices.

Both approaches go through the real SDKs to the fake AI server on 127.0.0.1 (no key, no
network). The tool loop is the scripted careful model of `tests/tool_fixtures.py` (search,
read 6 lines, exact replace, list tests, create a test, run the suite, finish) on the ledger
library (a ~2,950-line, ~100k-character module). The whole-file approach is one
structured-output call of the implementer whose reply must carry every changed file whole.
Tokens are the fake server's count (characters / 4) for both, so the two are comparable;
cost uses the built-in list prices. The last line is `BENCH-JSON {...}`.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.budget import BUILTIN_PRICES, BudgetGuard, cost_usd
from somas_action.core.clock import SystemClock
from somas_action.core.conversation import Record, TurnRecord
from somas_action.core.toolloop import Finished, LoopLimits, run_tool_loop
from somas_action.providers.structured import (
    Conversation,
    flatten,
    system_prompt,
    user_prompt,
)
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from tests import tool_fixtures as lib
from tests.fakes import live
from tests.fakes.ai_server import ANTHROPIC, OPENAI, FakeAIServer, ok
from tests.tool_child import model_for

MODELS = {OPENAI: "gpt-4o", ANTHROPIC: "claude-sonnet-4-20250514"}
OUTPUT_CAP = 4096  # the implementer's max_output_tokens today


def tool_loop(server: FakeAIServer, api: str, repo: Path) -> dict[str, Any]:
    """The scripted change through the tool loop; what was sent and what it cost."""
    server.policy(api, lib.discount_policy)
    before = len(server.requests)
    with ScratchTree.open(GitWorkspace(repo), "main") as scratch:
        specs = tool_specs(EDIT_TOOLS, edits=True)
        tools = RepositoryTools(
            scratch, specs, lib.tool_settings(("src/", "tests/")), lib.run_pytest
        )
        records: list[Record] = [
            lib.started(scratch.commit, scratch.base_tree(), [s.name for s in specs])
        ]
        outcome = run_tool_loop(
            model_for(api, server.url),
            tools,
            records,
            LoopLimits(max_turns=20, price=BUILTIN_PRICES[MODELS[api]]),
            SystemClock(),
            BudgetGuard(None, {}),
            lambda record: None,
        )
    assert isinstance(outcome, Finished), outcome
    turns = [r for r in records if isinstance(r, TurnRecord)]
    sent = [len(json.dumps(r.body)) for r in server.requests[before:]]
    return {
        "turns": len(turns),
        "chars_sent": sum(sent),
        "largest_request_chars": max(sent),
        "input_tokens": sum(t.input_tokens for t in turns),
        "output_tokens": sum(t.output_tokens for t in turns),
        "largest_output_tokens": max(t.output_tokens for t in turns),
        "cost_usd": round(sum(t.cost_usd for t in turns), 6),
        "diff": diff_stat(repo, outcome),
    }


def diff_stat(repo: Path, outcome: Finished) -> str:
    """`+added -removed` lines per changed file, measured against `main`."""
    stats = []
    for change in outcome.changes:
        try:
            before = lib.git(repo, "show", f"main:{change.path}").splitlines()
        except subprocess.CalledProcessError:
            before = []
        after = (change.content or "").splitlines()
        lines = list(difflib.unified_diff(before, after, lineterm="", n=0))[2:]
        added = sum(1 for line in lines if line.startswith("+"))
        removed = sum(1 for line in lines if line.startswith("-"))
        stats.append(f"{change.path} +{added} -{removed}")
    return "; ".join(stats)


def whole_file(server: FakeAIServer, api: str, with_file: bool) -> dict[str, Any]:
    """One structured-output implementer call whose reply carries the whole module."""
    new_module = lib.rules_module().replace(
        '        raise ValueError("percent must not be negative")\n',
        '        raise ValueError("percent must not be negative")\n' + lib.GUARD,
    )
    reply = {
        "summary": "apply_discount refuses a percent above 100",
        "files": [
            {"path": lib.MODULE, "content": new_module},
            {"path": lib.NEW_TEST, "content": lib.NEW_TEST_TEXT},
        ],
        "commit_message": "apply_discount: refuse a percent above 100",
    }
    server.script(api, ok(reply))
    schema = flatten({"$ref": "https://somas.dev/schemas/agent-output/implementation.schema.json"})
    inputs: dict[str, Any] = {"issue": {"title": lib.ISSUE, "body": lib.ISSUE}}
    if with_file:
        inputs["files"] = {lib.MODULE: lib.rules_module()}
    conversation = Conversation(
        model=MODELS[api],
        stage="implementation",
        system=system_prompt("implementer", "Implement the issue.", schema),
        schema=schema,
        max_tokens=OUTPUT_CAP,
        temperature=None,
    )
    client = _structured_client(server, api)
    client.start(conversation, user_prompt("implementation", 1, inputs))
    before = len(server.requests)
    answer = client.send(conversation)
    sent = len(json.dumps(server.requests[before].body))
    price = BUILTIN_PRICES[MODELS[api]]
    return {
        "turns": 1,
        "chars_sent": sent,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "fits_output_cap": answer.output_tokens <= OUTPUT_CAP,
        "cost_usd": cost_usd(price, answer.input_tokens, answer.output_tokens),
    }


def _structured_client(server: FakeAIServer, api: str) -> Any:
    clock = SystemClock()
    if api == OPENAI:
        from somas_action.providers.openai_client import OpenAIChatClient

        return OpenAIChatClient("openai", f"{server.url}/v1", live.OPENAI_KEY, 30, clock)
    from somas_action.providers.anthropic_client import AnthropicMessagesClient

    return AnthropicMessagesClient(server.url, live.ANTHROPIC_KEY, 30, clock)


def demo_pipeline(server: FakeAIServer, api: str, tools: bool, root: Path) -> dict[str, Any]:
    """The demo through the live pipeline; the implementer with tools or with whole files."""
    import yaml

    from somas_action.app.compose import build_runner
    from somas_action.core import tool_events
    from somas_action.core.clock import FakeClock
    from somas_action.state.store import ProjectStore
    from tests import scenarios
    from tests.demo_recording import demo_policy
    from tests.fakes.ai_server import for_stage, task_of

    repo = scenarios.make_repo(root / f"demo-{api}-{'tools' if tools else 'whole'}")
    live.configure(repo, server)
    model = ("openai", MODELS[api]) if api == OPENAI else ("anthropic", MODELS[api])
    agents = ("intake-analyst", "spec-writer", "architect", "implementer", "validator",
              "reviewer", "releaser", "debugger")  # fmt: skip
    for agent in agents:
        live.set_chain(repo, agent, model)
    if not tools:
        live.without_tools(repo, "implementer")
    config = repo / ".somas" / "config.yml"
    data = yaml.safe_load(config.read_text())
    data["pipeline"]["retry"] = {"backoff_seconds": 0}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    server.policy(api, for_stage("implementation", demo_policy))
    before = len(server.requests)
    run = build_runner(repo, clock=FakeClock(step_seconds=0))
    run.start(scenarios.open_issue(repo), "local:bench")
    run.advance("project-1", "local:bench")
    run.approve("project-1", "local:bench")
    state, _ = run.advance("project-1", "local:bench")
    assert state["status"] == "completed", state["status"]
    requests = server.requests[before:]

    def stage_of(body: dict[str, Any]) -> str:
        task = task_of(body)
        if task:
            return str(task.get("stage"))
        name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
        if name:
            return str(name).removesuffix("_output")
        tool = str(body.get("tools", [{}])[0].get("name", ""))
        return tool.removeprefix("submit_").removesuffix("_output")

    implementer = [r for r in requests if stage_of(r.body) == "implementation"]
    usage = state["metrics"]["usage"]
    stage_usage = usage["by_stage"]["implementation"]
    events = ProjectStore(repo, "project-1").read_events()
    return {
        "implementation_turns": len(implementer),
        "implementation_chars_sent": sum(len(json.dumps(r.body)) for r in implementer),
        "implementation_largest_request_chars": max(len(json.dumps(r.body)) for r in implementer),
        "implementation_input_tokens": stage_usage["input_tokens"],
        "implementation_output_tokens": stage_usage["output_tokens"],
        "implementation_cost_usd": stage_usage["cost_usd"],
        "pipeline_requests": len(requests),
        "pipeline_chars_sent": sum(len(json.dumps(r.body)) for r in requests),
        "pipeline_cost_usd": usage["cost_usd"],
        "tool_calls": len([e for e in events if e["event_type"] == "agent_tool_called"]),
        "conversations": len(tool_events.conversations(events)),
    }


def main() -> None:
    """Print the figures for both SDKs."""
    results: dict[str, Any] = {}
    os.environ.update({"OPENAI_API_KEY": live.OPENAI_KEY, "ANTHROPIC_API_KEY": live.ANTHROPIC_KEY})
    with (
        tempfile.TemporaryDirectory(prefix="somas-bench-demo-") as tmp,
        FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY) as server,
    ):
        print("demo: the seven-stage pipeline, live against the fake server")
        for api in (OPENAI, ANTHROPIC):
            figures = {
                "tool_loop": demo_pipeline(server, api, True, Path(tmp)),
                "whole_file": demo_pipeline(server, api, False, Path(tmp)),
            }
            results[f"demo_{api}"] = figures
            print(f"\n{api} ({MODELS[api]})")
            for name, row in figures.items():
                print(f"  {name:<28} " + ", ".join(f"{k}={v}" for k, v in row.items()))
    with (
        tempfile.TemporaryDirectory(prefix="somas-bench-tools-") as tmp,
        FakeAIServer(live.OPENAI_KEY, live.ANTHROPIC_KEY) as server,
    ):
        repo = lib.make_library(Path(tmp) / "ledger")
        print(f"ledger fixture: {lib.MODULE} {len(lib.rules_module().splitlines())} lines, "
              f"{len(lib.rules_module())} characters; output cap {OUTPUT_CAP} tokens")  # fmt: skip
        for api in (OPENAI, ANTHROPIC):
            figures = {
                "tool_loop": tool_loop(server, api, repo),
                "whole_file_as_today": whole_file(server, api, with_file=False),
                "whole_file_given_the_file": whole_file(server, api, with_file=True),
            }
            results[api] = figures
            print(f"\n{api} ({MODELS[api]})")
            for name, row in figures.items():
                print(f"  {name:<28} " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print("\nBENCH-JSON " + json.dumps(results))


if __name__ == "__main__":
    main()
