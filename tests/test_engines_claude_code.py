"""The real Claude Code CLI, installed at its pinned version, against a fake Anthropic API.

`make engines` (run by `make test`) installs it into `.cache/engines/`; without it these tests
skip and say so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.providers.engines.install import find_installed
from somas_action.providers.engines.mcp_tools import McpToolServer, ToolCallRecord
from somas_action.providers.engines.spec import EngineSpec
from tests.engine_scenarios import GREET, make_project, run_once
from tests.engine_tools import CheckoutTools
from tests.fakes.anthropic_stream import FakeAnthropicStream, ToolUse, calls, fails, says

ROOT = Path(__file__).parent.parent
ENGINES_DIR = ROOT / ".cache" / "engines"
VERSION = json.loads((Path(__file__).parent / "engine_pins.json").read_text())["claude-code"]
KEY = "sk-ant-test-ENGINE-only-4b8e21"
OLD, NEW = 'return "hi " + name', 'return "hello " + name'

pytestmark = pytest.mark.skipif(
    find_installed(ENGINES_DIR, "claude-code", VERSION) is None,
    reason=f"Claude Code {VERSION} is not installed in .cache/engines: run `make engines`",
)


def claude(fake: FakeAnthropicStream, max_turns: int = 6) -> EngineSpec:
    """Claude Code at its pin, pointed at the fake."""
    return EngineSpec(
        engine="claude-code",
        version=VERSION,
        model="claude-sonnet-4-5",
        max_turns=max_turns,
        timeout_seconds=120,
        base_url=fake.url,
    )


def result_for(body: dict[str, Any], tool_id: str) -> str:
    """The text of the tool_result answering `tool_id` in a request's conversation."""
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result" and block.get("tool_use_id") == tool_id:
                content = block["content"]
                return content if isinstance(content, str) else json.dumps(content)
    raise AssertionError(f"no tool_result for {tool_id}")


@pytest.mark.subprocess
def test_claude_code_reads_and_edits_a_file_through_the_fake_api(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    greet = str(tmp_path / "run" / "tree" / "greet.py")
    with FakeAnthropicStream(KEY) as fake:
        fake.script(
            calls(ToolUse("Read", {"file_path": greet})),
            calls(ToolUse("Edit", {"file_path": greet, "old_string": OLD, "new_string": NEW})),
            says("greet now says hello."),
        )
        outcome, files = run_once(repo, tmp_path / "run", claude(fake), KEY, tools_dir=ENGINES_DIR)

    assert fake.refusals() == []
    assert (outcome.kind, outcome.exit_code) == ("success", 0), outcome.stderr_tail
    assert files == [("greet.py", GREET.replace(OLD, NEW).encode())]
    assert outcome.last_words == "greet now says hello."
    assert outcome.usage.turns == 3
    answered = fake.answered()
    assert len(answered) == 3 and fake.unscripted == 0
    read = result_for(answered[1].body, answered[0].ids[0])
    assert 'return "hi " + name' in read  # the Read result holds the file
    assert "Make greet say hello." in json.dumps(answered[0].body["messages"][0])
    assert {s.headers["x-api-key"] for s in fake.seen} == {KEY}


@pytest.mark.subprocess
def test_claude_code_stopping_at_its_turn_limit_is_max_turns_with_the_work_kept(
    tmp_path: Path,
) -> None:
    repo = make_project(tmp_path / "repo")
    greet = str(tmp_path / "run" / "tree" / "greet.py")
    with FakeAnthropicStream(KEY) as fake:
        fake.script(
            calls(ToolUse("Read", {"file_path": greet})),
            calls(ToolUse("Edit", {"file_path": greet, "old_string": OLD, "new_string": NEW})),
        )
        spec = claude(fake, max_turns=2)
        outcome, files = run_once(repo, tmp_path / "run", spec, KEY, tools_dir=ENGINES_DIR)

    assert (outcome.kind, outcome.parks) == ("max_turns", True), outcome.reason
    assert files == [("greet.py", GREET.replace(OLD, NEW).encode())]
    assert fake.unscripted == 0


@pytest.mark.subprocess
def test_claude_code_out_of_credit_is_a_quota_outcome(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    with FakeAnthropicStream(KEY) as fake:
        fake.script(
            fails(400, "invalid_request_error", "Your credit balance is too low to access the API")
        )
        outcome, _ = run_once(repo, tmp_path / "run", claude(fake), KEY, tools_dir=ENGINES_DIR)

    assert (outcome.kind, outcome.parks) == ("quota", True), outcome.reason
    assert len(fake.seen) == 1


@pytest.mark.subprocess
def test_claude_code_uses_somas_tools_over_mcp_and_each_call_is_recorded(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    tree = tmp_path / "run" / "tree"
    greet = str(tree / "greet.py")
    tools, records = CheckoutTools(tree), list[ToolCallRecord]()
    with FakeAnthropicStream(KEY) as fake, McpToolServer(tools, records.append) as endpoint:
        fake.script(
            calls(ToolUse("mcp__somas__search", {"pattern": "def greet", "prefix": ""})),
            calls(ToolUse("Read", {"file_path": greet})),
            calls(ToolUse("Edit", {"file_path": greet, "old_string": OLD, "new_string": NEW})),
            calls(ToolUse("mcp__somas__run_tests", {})),
            says("greet says hello; the suite passes."),
        )
        spec = claude(fake)
        outcome, files = run_once(
            repo, tmp_path / "run", spec, KEY, tools_dir=ENGINES_DIR, mcp=endpoint
        )

    assert fake.refusals() == []
    assert outcome.kind == "success", outcome.reason
    assert [(r.tool, r.ok) for r in records] == [("search", True), ("run_tests", True)]
    assert records[1].output.startswith("1 passed")
    assert files == [("greet.py", GREET.replace(OLD, NEW).encode())]
    answered = fake.answered()
    # Claude Code defers MCP tools: it names them in the prompt and loads schemas on demand.
    first = json.dumps(answered[0].body)
    for name in ("list_files", "read_file", "run_tests", "search"):
        assert f"mcp__somas__{name}" in first
    assert "greet.py:1:def greet(name):" in result_for(answered[1].body, answered[0].ids[0])
    assert "1 passed" in result_for(answered[4].body, answered[3].ids[0])
    # The token reached the engine only through its settings file, never the transcript.
    assert endpoint.token not in outcome.transcript.read_text()
