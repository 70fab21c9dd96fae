"""The real Claude Code CLI, installed at its pinned version, against a fake Anthropic API.

`make engines` (run by `make test`) installs it into `.cache/engines/`; without it these tests
skip and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.providers.engines.install import find_installed
from somas_action.providers.engines.spec import EngineSpec
from tests.engine_scenarios import GREET, make_project, run_once
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


def tool_results(body: dict[str, object]) -> list[str]:
    """The text of every tool_result in a request's last message."""
    last = body["messages"][-1]  # type: ignore[index]
    texts = []
    for block in last["content"]:
        if block.get("type") == "tool_result":
            content = block["content"]
            texts.append(content if isinstance(content, str) else json.dumps(content))
    return texts


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
    assert "hi " in tool_results(answered[1].body)[0]  # the Read result holds the file
    assert "Make greet say hello." in json.dumps(answered[0].body["messages"][0])
    assert {s.headers["x-api-key"] for s in fake.seen} == {KEY}


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


def test_claude_code_out_of_credit_is_a_quota_outcome(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    with FakeAnthropicStream(KEY) as fake:
        fake.script(
            fails(400, "invalid_request_error", "Your credit balance is too low to access the API")
        )
        outcome, _ = run_once(repo, tmp_path / "run", claude(fake), KEY, tools_dir=ENGINES_DIR)

    assert (outcome.kind, outcome.parks) == ("quota", True), outcome.reason
    assert len(fake.seen) == 1
