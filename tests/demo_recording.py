"""How the demo's recorded implementer conversation is made: `python -m tests.demo_recording`.

A scripted model that reads the real tool results (search `slugify`, read the lines found,
replace the function exactly, add two cases to the existing suite, run the tests, finish)
drives the real pipeline on a fresh demo repository; its conversation is then taken from the
project's events and written as `somas_action/recordings/demo/implementation.conversation.json`.
The recorded provider replays it (the tools run for real, each result checked against the
recording), so a change to the demo repository or the tools that alters a result shows up as
a divergence in `make demo` and in the tests.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from somas_action.cli.commands.demo import prepare_repo
from somas_action.config.loader import load_config
from somas_action.config.resources import recordings_dir
from somas_action.core import names, tool_events
from somas_action.core.clock import SystemClock
from somas_action.core.conversation import (
    ModelTurn,
    Record,
    ToolCall,
    ToolSpec,
    Transcript,
)
from somas_action.core.ports import AgentRequest
from somas_action.core.toolloop import ModelPort
from somas_action.pipeline.runner import Runner, Services
from somas_action.providers.recorded import RecordedProvider
from somas_action.state.local_tracker import LocalTracker
from somas_action.state.store import ProjectStore
from somas_action.state.tool_replay import write_recording
from tests.fakes.ai_server import Calls, ToolContext
from tests.tool_fixtures import context_of

DEMO = recordings_dir() / "demo"
CONVERSATION = DEMO / "implementation.conversation.json"
NEW_FUNCTION = '''def slugify(text: str, max_length: int | None = None) -> str:
    """Lowercase ASCII words joined by single hyphens, with none at either end.

    With `max_length`, the slug is cut at the last word boundary that fits.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _SEPARATORS.sub("-", ascii_text.lower()).strip("-")
    if max_length is None or len(slug) <= max_length:
        return slug
    cut = slug[: max_length + 1]
    boundary = cut.rfind("-")
    return cut[:boundary] if boundary > 0 else slug[:max_length].rstrip("-")
'''
NEW_CASES = """
    def test_max_length_cuts_at_a_word_boundary(self) -> None:
        self.assertEqual(slugify("one two three", max_length=9), "one-two")
        self.assertEqual(slugify("one two three", max_length=7), "one-two")

    def test_max_length_never_leaves_a_trailing_hyphen(self) -> None:
        for limit in range(20):
            slug = slugify("alpha beta gamma", max_length=limit)
            self.assertLessEqual(len(slug), limit)
            self.assertFalse(slug.endswith("-"))
"""


def _lines(read_result: str) -> list[str]:
    """A read_file result's lines without their `N| ` prefixes."""
    return [re.sub(r"^\s*\d+\| ", "", line) for line in read_result.splitlines()[1:]]


def _function(lines: list[str]) -> str:
    """`def slugify` up to the end of its body, as the file has it."""
    start = next(i for i, line in enumerate(lines) if line.startswith("def slugify("))
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("    return "))
    return "\n".join(lines[start : end + 1]) + "\n"


def demo_policy(ctx: ToolContext) -> Calls:
    """The implementer: each turn decided from the real result of the one before."""
    if ctx.turn == 1:
        return Calls([("search", {"pattern": r"def slugify\(", "prefix": "src/"})], "Find it.")
    if ctx.turn == 2:
        path = ctx.last("search").result.splitlines()[1].split(":")[0]
        return Calls([("read_file", {"path": path, "start": 1, "end": 30})])
    if ctx.turn == 3:
        read = ctx.last("read_file")
        old = _function(_lines(read.result))
        arguments = {"path": read.arguments["path"], "old": old, "new": NEW_FUNCTION}
        text = "max_length is optional, so today's callers keep today's slugs."
        return Calls([("replace_in_file", arguments)], text)
    if ctx.turn == 4:
        return Calls([("read_file", {"path": "tests/test_slugify.py", "start": 1, "end": 40})])
    if ctx.turn == 5:
        lines = _lines(ctx.last("read_file").result)
        last = max(i for i, line in enumerate(lines) if "self.assert" in line)
        anchor = lines[last] + "\n"
        new = anchor + NEW_CASES
        return Calls(
            [("replace_in_file", {"path": "tests/test_slugify.py", "old": anchor, "new": new})],
            "The new cases go beside the existing ones, in the suite's own style.",
        )
    if ctx.turn == 6:
        return Calls([("run_tests", {})])
    report = json.loads(ctx.last("run_tests").result)
    summary = (
        f"slugify takes max_length and cuts at a word boundary; the suite: "
        f"{report['passed']}/{report['total']} pass, {len(report['regressions'])} regressions."
    )
    return Calls(
        [
            (
                "finish",
                {
                    "summary": summary,
                    "commit_message": "slugify: add max_length, cut at a word boundary",
                },
            )
        ]
    )


class ScriptedDemoModel:
    """A ModelPort answering with `demo_policy`; tokens counted as the fake server counts."""

    provider = "openai"
    model = "gpt-4o"

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """The policy's answer to the transcript so far."""
        context = context_of(transcript, [t.name for t in tools])
        answer = demo_policy(context)
        calls = tuple(
            ToolCall(f"call_{context.turn}_{i}", name, args)
            for i, (name, args) in enumerate(answer.calls)
        )
        sent = transcript.chars() + sum(len(json.dumps(t.parameters)) for t in tools)
        out = max(len(json.dumps(answer.calls) + answer.text) // 4, 1)
        return ModelTurn(answer.text, calls, "tool_calls", sent // 4, out, sent)


class _ScriptedImplementer(RecordedProvider):
    """The demo recording, with the scripted model as the implementer."""

    def tool_model(self, request: AgentRequest) -> ModelPort | None:
        if request.stage == "implementation":
            return ScriptedDemoModel()
        return super().tool_model(request)


def record(folder: Path) -> list[Record]:
    """Run the pipeline to the review gate on a new demo repository; the implementer's records."""
    prepare_repo(folder)
    tracker = LocalTracker(folder)
    issue = json.loads((DEMO / "issue.json").read_text())
    tracker.create_issue(issue["title"], issue["body"], [names.PROJECT_LABEL])
    provider = _ScriptedImplementer(DEMO)
    services = Services(folder, load_config(folder), provider, tracker, SystemClock())
    runner = Runner(services)
    runner.start(1, "local:recorder")
    state, stop = runner.advance("project-1", "local:recorder")
    if state["status"] != names.WAITING:
        raise SystemExit(f"the scripted demo did not reach the review gate: {stop.reason}")
    store = ProjectStore(folder, "project-1")
    events = store.read_events()
    [conversation] = tool_events.conversations(events, "implementation")

    def output(artifact: str, sha256: str) -> str:
        return (store.artifacts_dir / artifact).read_text(encoding="utf-8")

    mine = tool_events.conversation_events(events, conversation)
    return tool_events.records_of(mine, output)


def main() -> None:
    """Write the demo's implementer conversation."""
    with tempfile.TemporaryDirectory(prefix="somas-demo-recording-") as tmp:
        records = record(Path(tmp) / "repo")
    write_recording(CONVERSATION, records)
    print(f"wrote {CONVERSATION} ({len(records)} records)", file=sys.stderr)


if __name__ == "__main__":
    main()
