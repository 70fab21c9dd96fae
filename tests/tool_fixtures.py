"""A fixture library with a module larger than a model's output cap, and a scripted model for it.

The issue asks for one small change in a long module: `apply_discount` must refuse a percent
above 100. `discount_policy` does what a careful model does with the tools (search, read the
few lines found, replace them exactly, add a test, run the suite, finish), reading the real
tool results at every step, so it works only if the tools answer usefully.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from somas_action.core.clock import FakeClock
from somas_action.core.conversation import (
    AssistantTurn,
    ConversationStarted,
    ModelTurn,
    ToolCall,
    ToolResults,
    ToolSpec,
    Transcript,
    UserText,
)
from somas_action.core.errors import ProviderError
from somas_action.state.repo_tools import ToolSettings
from tests import scenarios
from tests.fakes.ai_server import Calls, Exchange, Policy, ToolContext

MODULE = "src/ledger/rules.py"
NEW_TEST = "tests/test_discount_limit.py"
RULES = 420  # ~3,000 lines, ~100k characters: far over 4,096 output tokens
ISSUE = "apply_discount must refuse a percent above 100 with ValueError."
GUARD = '    if percent > 100:\n        raise ValueError("percent must not exceed 100")\n'
NEW_TEST_TEXT = (
    "import pytest\n\nfrom ledger.rules import apply_discount\n\n\n"
    "def test_a_percent_above_100_is_refused():\n"
    "    with pytest.raises(ValueError):\n        apply_discount(10.0, 101)\n\n\n"
    "def test_100_percent_is_free():\n    assert apply_discount(10.0, 100) == 0.0\n"
)


def rules_module() -> str:
    """The large module: many small rules, and apply_discount somewhere in the middle."""
    parts = ['"""Ledger rules."""\n\nfrom __future__ import annotations\n']
    for number in range(1, RULES + 1):
        parts.append(
            f"\n\ndef rule_{number:04d}(amount: int) -> int:\n"
            f'    """Rule {number}: scale the amount by {number % 7 + 1} and add {number}."""\n'
            "    if amount < 0:\n"
            '        raise ValueError("amount must not be negative")\n'
            f"    return amount * {number % 7 + 1} + {number}\n"
        )
        if number == RULES // 2:
            parts.append(
                "\n\ndef apply_discount(total: float, percent: float) -> float:\n"
                '    """The total after a percentage discount."""\n'
                "    if percent < 0:\n"
                '        raise ValueError("percent must not be negative")\n'
                "    return round(total * (100 - percent) / 100, 2)\n"
            )
    return "".join(parts)


def existing_tests() -> str:
    """The library's own suite."""
    return (
        "import pytest\n\nfrom ledger.rules import apply_discount, rule_0001, rule_0420\n\n\n"
        "def test_rules_scale_and_add():\n"
        "    assert rule_0001(3) == 3 * 2 + 1\n    assert rule_0420(1) == 1 * 1 + 420\n\n\n"
        "def test_negative_amounts_are_refused():\n"
        "    with pytest.raises(ValueError):\n        rule_0001(-1)\n\n\n"
        "def test_discount():\n    assert apply_discount(200.0, 25) == 150.0\n"
    )


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def make_library(path: Path) -> Path:
    """A git repository holding the ledger library on `main`."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.invalid")
    files = {
        MODULE: rules_module(),
        "src/ledger/__init__.py": '"""Ledger."""\n',
        "tests/test_rules.py": existing_tests(),
        "README.md": "# ledger\n",
        "pyproject.toml": '[project]\nname = "ledger"\nversion = "1.0.0"\n',
    }
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "ledger 1.0")
    return path


def run_pytest(tree: Path) -> dict[str, Any]:
    """The test runner the tests inject for `run_tests`: real pytest on a copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="ledger-tests-") as tmp:
        copy = Path(tmp) / "tree"
        subprocess.run(
            ["cp", "-r", str(tree), str(copy)], check=True, capture_output=True, timeout=60
        )
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=copy,
            env={
                "PYTHONPATH": str(copy / "src"),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    last = (result.stdout.strip().splitlines() or [""])[-1]
    found = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|errors?)", last)}
    return {"exit_code": result.returncode, "summary": last, **found}


def _suite(ctx: ToolContext) -> str:
    runs = [e for e in ctx.exchanges if e.name == "run_tests" and not e.is_error]
    return str(json.loads(runs[-1].result)["summary"]) if runs else "not run"


def discount_policy(ctx: ToolContext) -> Calls:
    """The careful model: each turn decided from the real result of the previous one."""
    if ctx.turn == 1:
        return Calls([("search", {"pattern": r"def apply_discount\(", "prefix": "src/"})])
    if ctx.turn == 2:
        path, line = ctx.last("search").result.splitlines()[1].split(":")[:2]
        return Calls([("read_file", {"path": path, "start": int(line), "end": int(line) + 5})])
    if ctx.turn == 3:
        read = ctx.last("read_file")
        lines = [re.sub(r"^\s*\d+\| ", "", x) for x in read.result.splitlines()[1:]]
        at = next(i for i, x in enumerate(lines) if "percent < 0" in x)
        old = "\n".join(lines[at : at + 2]) + "\n"
        new = old + GUARD
        return Calls(
            [("replace_in_file", {"path": read.arguments["path"], "old": old, "new": new})]
        )
    if ctx.turn == 4:
        return Calls([("list_files", {"prefix": "tests/"})], text="Now a test for the limit.")
    if ctx.turn == 5:
        return Calls([("create_file", {"path": NEW_TEST, "content": NEW_TEST_TEXT})])
    if ctx.turn == 6:
        return Calls([("run_tests", {})])
    return Calls(
        [
            (
                "finish",
                {
                    "summary": f"Refuse a percent above 100; suite: {_suite(ctx)}",
                    "commit_message": "apply_discount: refuse a percent above 100",
                },
            )
        ]
    )


def started(commit: str, tree: str, tools: list[str]) -> ConversationStarted:
    """The first record of the implementer's conversation on the ledger."""
    return ConversationStarted(
        stage="implementation",
        agent="implementer",
        tools=tuple(tools),
        system="You are the SOMAS agent `implementer`. Change the repository with the tools.",
        user=f"Issue: {ISSUE}\nAllowed paths: src/, tests/",
        base_commit=commit,
        base_tree=tree,
    )


class ScriptedModel:
    """A ModelPort in the test process answering with a policy (no HTTP): for loop unit tests."""

    provider = "openai"
    model = "gpt-4o"

    def __init__(self, policy: Policy, error_at: dict[int, ProviderError] | None = None) -> None:
        self.policy = policy
        self.error_at = error_at or {}
        self.seen: list[Transcript] = []
        self.clock_step: tuple[FakeClock, float] | None = None

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """The policy's answer to the transcript so far."""
        self.seen.append(Transcript(transcript.system, list(transcript.messages)))
        if self.clock_step is not None:
            self.clock_step[0].advance(self.clock_step[1])
        context = context_of(transcript, [t.name for t in tools])
        if context.turn in self.error_at:
            raise self.error_at.pop(context.turn)
        answer = self.policy(context)
        calls = tuple(
            ToolCall(f"t{context.turn}_{i}", name, args)
            for i, (name, args) in enumerate(answer.calls)
        )
        return ModelTurn(answer.text, calls, "tool_calls", 1000, 100, transcript.chars())


def context_of(transcript: Transcript, tools: list[str]) -> ToolContext:
    """What a policy sees, from a provider-neutral transcript."""
    calls: dict[str, ToolCall] = {}
    exchanges, turn = [], 1
    for message in transcript.messages:
        if isinstance(message, AssistantTurn):
            turn += 1
            calls.update({c.id: c for c in message.tool_calls})
        elif isinstance(message, ToolResults):
            for result in message.results:
                call = calls[result.call_id]
                exchanges.append(
                    Exchange(call.name, call.arguments, result.content, result.is_error)
                )
    first = transcript.messages[0]
    user = first.text if isinstance(first, UserText) else ""
    return ToolContext(turn, exchanges, tools, user)


def tool_settings(allowed_paths: tuple[str, ...], **overrides: int) -> ToolSettings:
    """The default config's tool bounds, with the given paths and overrides."""
    defaults = ToolSettings.of(scenarios.config_section())
    return dataclasses.replace(defaults, allowed_paths=allowed_paths, **overrides)
