"""The real Codex CLI, installed at its pinned version, against a fake Responses API.

`make engines` (run by `make test`) installs it into `.cache/engines/`; without it these tests
skip and say so. Codex edits through its shell tool (`exec_command`): SOMAS's sandbox, not
Codex's own, confines it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.providers.engines.install import find_installed
from somas_action.providers.engines.mcp_tools import McpToolServer, ToolCallRecord
from somas_action.providers.engines.spec import EngineSpec
from tests.engine_scenarios import GREET, make_project, run_once
from tests.engine_tools import CheckoutTools
from tests.fakes.responses_stream import FakeResponsesStream, FunctionCall, calls, fails, says

ROOT = Path(__file__).parent.parent
ENGINES_DIR = ROOT / ".cache" / "engines"
VERSION = json.loads((Path(__file__).parent / "engine_pins.json").read_text())["codex"]
KEY = "sk-test-ENGINE-codex-only-5d1f7a"
MCP = "mcp__somas"  # Codex offers an MCP server's tools as one namespace
EDIT = 'sed -i \'s/"hi "/"hello "/\' greet.py'

pytestmark = pytest.mark.skipif(
    find_installed(ENGINES_DIR, "codex", VERSION) is None,
    reason=f"Codex {VERSION} is not installed in .cache/engines: run `make engines`",
)


def codex(fake: FakeResponsesStream) -> EngineSpec:
    """Codex at its pin, pointed at the fake."""
    return EngineSpec(
        engine="codex", version=VERSION, model="gpt-5-codex", timeout_seconds=120, base_url=fake.url
    )


def output_for(body: dict[str, object], call_id: str) -> str:
    """The output Codex sent back for the function call `call_id`."""
    for item in body["input"]:  # type: ignore[attr-defined]
        if item.get("type") == "function_call_output" and item.get("call_id") == call_id:
            output = item["output"]
            return output if isinstance(output, str) else json.dumps(output)
    raise AssertionError(f"no function_call_output for {call_id}")


@pytest.mark.subprocess
def test_codex_edits_a_file_through_its_shell_tool_against_the_fake_api(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    with FakeResponsesStream(KEY) as fake:
        fake.script(
            calls(FunctionCall("exec_command", {"cmd": "cat greet.py"})),
            calls(FunctionCall("exec_command", {"cmd": EDIT})),
            says("greet now says hello."),
        )
        outcome, files = run_once(repo, tmp_path / "run", codex(fake), KEY, tools_dir=ENGINES_DIR)

    assert fake.refusals() == []
    assert (outcome.kind, outcome.exit_code) == ("success", 0), outcome.reason
    assert files == [("greet.py", GREET.replace('"hi "', '"hello "').encode())]
    assert outcome.last_words == "greet now says hello."
    assert outcome.usage.input_tokens > 0 and outcome.session_id
    answered = fake.answered()
    assert len(answered) == 3
    assert 'return "hi " + name' in output_for(answered[1].body, answered[0].ids[0])
    assert "Make greet say hello." in json.dumps(answered[0].body["input"])
    assert {s.headers["authorization"] for s in fake.seen} == {f"Bearer {KEY}"}
    assert {s.path for s in fake.seen} == {"/v1/responses"}


@pytest.mark.subprocess
def test_codex_out_of_quota_is_a_quota_outcome_with_nothing_changed(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    with FakeResponsesStream(KEY) as fake:
        fake.script(
            *[
                fails(429, "insufficient_quota", "insufficient_quota", "You exceeded your quota")
                for _ in range(8)
            ]
        )
        outcome, files = run_once(repo, tmp_path / "run", codex(fake), KEY, tools_dir=ENGINES_DIR)

    assert (outcome.kind, outcome.parks) == ("quota", True), outcome.reason
    assert files == []


@pytest.mark.subprocess
def test_codex_uses_somas_tools_over_mcp_and_each_call_is_recorded(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    tree = tmp_path / "run" / "tree"
    tools, records = CheckoutTools(tree), list[ToolCallRecord]()
    with FakeResponsesStream(KEY) as fake, McpToolServer(tools, records.append) as endpoint:
        fake.script(
            calls(FunctionCall("search", {"pattern": "def greet", "prefix": ""}, MCP)),
            calls(FunctionCall("exec_command", {"cmd": EDIT})),
            calls(FunctionCall("run_tests", {}, MCP)),
            says("greet says hello; the suite passes."),
        )
        outcome, files = run_once(
            repo, tmp_path / "run", codex(fake), KEY, tools_dir=ENGINES_DIR, mcp=endpoint
        )

    assert fake.refusals() == []
    assert outcome.kind == "success", outcome.reason
    assert [(r.tool, r.ok) for r in records] == [("search", True), ("run_tests", True)]
    assert files == [("greet.py", GREET.replace('"hi "', '"hello "').encode())]
    answered = fake.answered()
    [somas] = [t for t in answered[0].body["tools"] if t.get("name") == MCP]
    assert somas["type"] == "namespace"
    offered = {t["name"] for t in somas["tools"]}
    assert offered == {"list_files", "read_file", "run_tests", "search"}
    assert "greet.py:1:def greet(name):" in output_for(answered[1].body, answered[0].ids[0])
    assert endpoint.token not in outcome.transcript.read_text()
