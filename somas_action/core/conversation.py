"""A tool-using conversation as data: messages, tool calls, and the records that rebuild it.

Provider-neutral: the SDK adapters translate a `Transcript` into OpenAI's or Anthropic's
messages. Every model turn and every tool call becomes a record (later an event); the records
alone rebuild the transcript, so a later process continues the conversation from the last
recorded step (`resume`) instead of starting over, and a tool call whose result was recorded
is never executed again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

RECORDING_FORMAT = 1
# What a model that answered without calling a tool is told (derived again on resume).
NUDGE = (
    "Continue with the tools. Call `finish` when the work is done; text without a tool call "
    "changes nothing."
)
# Durations in tool output (test runs) differ from run to run; replay compares without them.
_TIMINGS = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s|sec|secs|seconds?)\b")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, what it does, and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for; `problem` says why its arguments could not be read."""

    id: str
    name: str
    arguments: dict[str, Any]
    problem: str | None = None


@dataclass(frozen=True)
class ModelTurn:
    """One model response: its text, the tool calls it asks for, and what it cost to get."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    chars_sent: int


@dataclass(frozen=True)
class ToolResult:
    """What a tool call answered; an error is a result too (the model reads and reacts)."""

    call_id: str
    name: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class UserText:
    """A user message: the task at the start, a nudge after a turn without tool calls."""

    text: str


@dataclass(frozen=True)
class AssistantTurn:
    """The model's message: text and tool calls."""

    text: str
    tool_calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolResults:
    """The answers to every tool call of the previous assistant turn, in call order."""

    results: tuple[ToolResult, ...]


Message = UserText | AssistantTurn | ToolResults


@dataclass
class Transcript:
    """The system prompt and the messages so far."""

    system: str
    messages: list[Message] = field(default_factory=list)

    def chars(self) -> int:
        """Characters the next request will carry (for the budget's token estimate)."""
        total = len(self.system)
        for message in self.messages:
            if isinstance(message, UserText):
                total += len(message.text)
            elif isinstance(message, AssistantTurn):
                total += len(message.text)
                total += sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls)
            else:
                total += sum(len(r.content) for r in message.results)
        return total


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationStarted:
    """The first record: who works, with which tools, on which tree, asked what."""

    stage: str
    agent: str
    tools: tuple[str, ...]
    system: str
    user: str
    base_commit: str
    base_tree: str


@dataclass(frozen=True)
class TurnRecord:
    """A model turn: the calls it requested, tokens, cost and characters sent."""

    turn: int
    provider: str
    model: str
    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    chars_sent: int


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call: name, arguments, its result (digests, size, full text) and the tree after."""

    turn: int
    call_id: str
    name: str
    arguments: dict[str, Any]
    is_error: bool
    output: str
    sha256: str
    replay_sha256: str
    chars: int
    tree: str

    def event_data(self) -> dict[str, Any]:
        """The record as an event carries it: the full output goes to an artifact instead."""
        data = record_to_json(self)
        data.pop("output")
        data["artifact"] = tool_output_artifact(self.turn, self.call_id)
        return data


Record = ConversationStarted | TurnRecord | ToolCallRecord


def tool_output_artifact(turn: int, call_id: str) -> str:
    """The artifact name that keeps a tool call's full output."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", call_id)[:60]
    return f"tool-{turn:03d}-{safe}.txt"


def digest(text: str) -> str:
    """sha256 of a tool output."""
    return hashlib.sha256(text.encode()).hexdigest()


def mask_timings(text: str) -> str:
    """`text` with durations replaced, so two runs of the same tests compare equal."""
    return _TIMINGS.sub("<t>", text)


def tool_call_record(turn: int, result: ToolResult, call: ToolCall, tree: str) -> ToolCallRecord:
    """The record of one executed tool call."""
    return ToolCallRecord(
        turn=turn,
        call_id=call.id,
        name=call.name,
        arguments=call.arguments,
        is_error=result.is_error,
        output=result.content,
        sha256=digest(result.content),
        replay_sha256=digest(mask_timings(result.content)),
        chars=len(result.content),
        tree=tree,
    )


# -- JSON form (schemas/conversation.schema.json) -------------------------------------------


def _call_json(call: ToolCall) -> dict[str, Any]:
    data: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": call.arguments}
    if call.problem is not None:
        data["problem"] = call.problem
    return data


def record_to_json(record: Record) -> dict[str, Any]:
    """A record as one JSON object (`type` says which)."""
    if isinstance(record, ConversationStarted):
        return {"type": "conversation_started", **_fields(record), "tools": list(record.tools)}
    if isinstance(record, TurnRecord):
        data = _fields(record)
        data["tool_calls"] = [_call_json(c) for c in record.tool_calls]
        return {"type": "turn", **data}
    return {"type": "tool_call", **_fields(record)}


def _fields(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def record_from_json(data: dict[str, Any]) -> Record:
    """The record a JSON object (already schema-checked) describes."""
    fields = {k: v for k, v in data.items() if k != "type"}
    if data["type"] == "conversation_started":
        return ConversationStarted(**{**fields, "tools": tuple(fields["tools"])})
    if data["type"] == "turn":
        calls = tuple(ToolCall(**c) for c in fields["tool_calls"])
        return TurnRecord(**{**fields, "tool_calls": calls})
    return ToolCallRecord(**fields)


def recording_to_json(records: list[Record]) -> dict[str, Any]:
    """A whole conversation as a recording file."""
    return {"format": RECORDING_FORMAT, "records": [record_to_json(r) for r in records]}


# -- rebuilding a conversation from its records -------------------------------------------


@dataclass(frozen=True)
class Resumption:
    """Where a recorded conversation stands: what to send next, what is still owed.

    When the last turn's tool calls were only partly executed (the process died), `pending`
    holds the calls still to run and `answered` the results already recorded for that turn;
    the transcript then ends with that assistant turn.
    """

    transcript: Transcript
    turns: int
    pending: tuple[ToolCall, ...]
    answered: tuple[ToolResult, ...]
    tree: str
    finish: ToolCallRecord | None
    done: tuple[ToolCallRecord, ...]


def resume(records: list[Record]) -> Resumption:
    """Rebuild the transcript from the records (see `Resumption`)."""
    if not records or not isinstance(records[0], ConversationStarted):
        raise ValueError("a conversation's records start with conversation_started")
    start = records[0]
    transcript = Transcript(start.system, [UserText(start.user)])
    results: dict[str, ToolCallRecord] = {}
    turns: list[TurnRecord] = []
    tree, finish = start.base_tree, None
    for record in records[1:]:
        if isinstance(record, TurnRecord):
            turns.append(record)
        elif isinstance(record, ToolCallRecord):
            results[record.call_id] = record
            tree = record.tree
            if record.name == "finish" and not record.is_error:
                finish = record
    pending: tuple[ToolCall, ...] = ()
    answered: tuple[ToolResult, ...] = ()
    for number, turn in enumerate(turns, start=1):
        transcript.messages.append(AssistantTurn(turn.text, turn.tool_calls))
        if not turn.tool_calls:
            transcript.messages.append(UserText(NUDGE))
            continue
        known = _results([c for c in turn.tool_calls if c.id in results], results)
        missing = tuple(c for c in turn.tool_calls if c.id not in results)
        if missing and number == len(turns) and finish is None:
            pending, answered = missing, known
        else:
            transcript.messages.append(ToolResults(known))
    done = tuple(r for r in records if isinstance(r, ToolCallRecord))
    return Resumption(transcript, len(turns), pending, answered, tree, finish, done)


def _results(calls: list[ToolCall], records: dict[str, ToolCallRecord]) -> tuple[ToolResult, ...]:
    return tuple(
        ToolResult(c.id, c.name, records[c.id].output, records[c.id].is_error) for c in calls
    )
