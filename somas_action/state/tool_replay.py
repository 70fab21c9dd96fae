"""Replay a recorded conversation with no model: re-run its tool calls, compare the results.

Each recorded tool call is executed again, in order, on a worktree of the conversation's base
commit; its result (durations masked) and the file tree after it must match the record. The
first difference is reported with the turn, the call and the first differing line, which is
how a change in the repository, the tools or the test runner shows up in CI without a key.
Recordings are files in the format of `schemas/conversation.schema.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from somas_action.config.schemas import first_problem
from somas_action.core.conversation import (
    ConversationStarted,
    Record,
    ToolCall,
    ToolCallRecord,
    TurnRecord,
    digest,
    mask_timings,
    record_from_json,
    recording_to_json,
)
from somas_action.core.errors import ConfigError
from somas_action.core.toolloop import ChangedFile
from somas_action.state.jsonio import atomic_write_text, json_problem
from somas_action.state.repo_tools import RepositoryTools


@dataclass(frozen=True)
class Divergence:
    """The first place a replay differs from the recording."""

    turn: int
    call_id: str
    name: str
    what: str  # "result", "error flag", "files" or "base"
    expected: str
    actual: str
    detail: str

    def describe(self) -> str:
        """One line for the terminal."""
        where = f"turn {self.turn}, {self.name} ({self.call_id})" if self.turn else "the start"
        return (
            f"{where}: the {self.what} differs (recorded {self.expected[:12]}, now "
            f"{self.actual[:12]}){': ' + self.detail if self.detail else ''}"
        )


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did: calls re-run, and the first divergence if any."""

    turns: int
    tool_calls: int
    divergence: Divergence | None
    changes: tuple[ChangedFile, ...]


def replay(records: Sequence[Record], tools: RepositoryTools) -> ReplayReport:
    """Re-execute every recorded tool call with `tools` (opened at the base commit)."""
    start = records[0] if records else None
    if not isinstance(start, ConversationStarted):
        raise ConfigError("a recording's first record must be conversation_started")
    turns = [r for r in records if isinstance(r, TurnRecord)]
    if tools.base_tree != start.base_tree:
        base = Divergence(0, "", "", "base", start.base_tree, tools.base_tree, "")
        return ReplayReport(len(turns), 0, base, ())
    requested = {c.id: c for t in turns for c in t.tool_calls}
    done = [r for r in records if isinstance(r, ToolCallRecord)]
    for count, record in enumerate(done, start=1):
        call = requested.get(record.call_id) or ToolCall(
            record.call_id, record.name, record.arguments
        )
        divergence = _compare(record, tools, call)
        if divergence is not None:
            return ReplayReport(len(turns), count, divergence, tuple(tools.changes()))
    return ReplayReport(len(turns), len(done), None, tuple(tools.changes()))


def _compare(record: ToolCallRecord, tools: RepositoryTools, call: ToolCall) -> Divergence | None:
    execution = tools.execute(call)
    result = execution.result
    now = digest(mask_timings(result.content))

    def differs(what: str, expected: str, actual: str, detail: str = "") -> Divergence:
        return Divergence(record.turn, record.call_id, record.name, what, expected, actual, detail)

    if now != record.replay_sha256:
        detail = first_difference(mask_timings(record.output), mask_timings(result.content))
        return differs("result", record.replay_sha256, now, detail)
    if result.is_error != record.is_error:
        return differs("error flag", str(record.is_error), str(result.is_error))
    if execution.tree != record.tree:
        return differs("files", record.tree, execution.tree)
    return None


def first_difference(recorded: str, now: str) -> str:
    """The first line that differs, both versions, shortened."""
    old_lines, new_lines = recorded.splitlines(), now.splitlines()
    for number in range(max(len(old_lines), len(new_lines))):
        old = old_lines[number] if number < len(old_lines) else "(no line)"
        new = new_lines[number] if number < len(new_lines) else "(no line)"
        if old != new:
            return f"line {number + 1}: recorded {old[:80]!r}, now {new[:80]!r}"
    return ""


# -- recording files ---------------------------------------------------------------------------


def read_recording(path: Path) -> list[Record]:
    """The records of a recording file; a bad file is a ConfigError naming the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recording ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({json_problem(exc)})") from None
    problem = first_problem("conversation", data)
    if problem:
        raise ConfigError(f"{path}: {problem}; see schemas/conversation.schema.json")
    return [record_from_json(r) for r in data["records"]]


def write_recording(path: Path, records: Sequence[Record]) -> None:
    """Write a conversation as a recording file (atomically)."""
    text = json.dumps(recording_to_json(list(records)), indent=2) + "\n"
    atomic_write_text(path, text)
