"""A tool-loop conversation in the project's log: records as events, and events back as records.

Every record of a conversation (`core.conversation`) becomes one event the moment it happens:
`agent_conversation_started`, `agent_turn_recorded`, `agent_tool_called` (its full output in
an artifact, the event keeping the digest), then `agent_loop_stopped` or `agent_loop_finished`.
The log alone rebuilds the conversation: `open_conversation` finds the one a stage left
unfinished and `records_of` turns its events back into records, so the next run continues it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from somas_action.core.conversation import (
    ConversationStarted,
    Record,
    ToolCallRecord,
    TurnRecord,
    record_from_json,
    record_to_json,
    tool_output_artifact,
)
from somas_action.core.domain import Event, EventDraft, JsonObject, State
from somas_action.core.engine import Batch, Context
from somas_action.core.events import EventType

# Tool outputs live in `artifacts/tool-calls/<conversation>/`: a folder no stage agent's
# namespace can name (stage names have no hyphen).
TOOL_CALLS_DIR = "tool-calls"
_ENDED = (EventType.AGENT_LOOP_FINISHED, EventType.AGENT_LOOP_STOPPED)
# Events that send a project back to a stage (`to_stage`) to run it again.
_REWINDS = (
    EventType.STAGE_RESTARTED,
    EventType.PROJECT_RESUMED,
    EventType.DEAD_LETTER_RETRIED,
    EventType.STATE_RESTORED,
    EventType.HUMAN_GATE_REJECTED,
    EventType.REVIEW_CHANGES_REQUESTED,
)
TOOL_LOOP_EVENTS = (
    EventType.AGENT_CONVERSATION_STARTED,
    EventType.AGENT_TURN_RECORDED,
    EventType.AGENT_TOOL_CALLED,
    EventType.AGENT_LOOP_STOPPED,
    EventType.AGENT_LOOP_FINISHED,
)
# The argument that says most about a call, for one-line summaries.
_KEY_ARGUMENT = {"search": "pattern", "list_files": "prefix", "finish": "summary"}


@dataclass(frozen=True)
class OpenConversation:
    """A conversation a stage left unfinished: its id, its events, and the branch tip it
    expects (its base, or the commit of its last stop's work)."""

    id: str
    events: tuple[Event, ...]
    expected_head: str


def conversation_id(events: Sequence[Event], stage: str, agent: str) -> str:
    """A new conversation's id: `<stage>-<agent>-<n>`, n counting that agent's conversations."""
    started = [
        e
        for e in events
        if e["event_type"] == EventType.AGENT_CONVERSATION_STARTED
        and e["data"]["stage"] == stage
        and e["data"]["agent"] == agent
    ]
    return f"{stage}-{agent}-{len(started) + 1}"


def tool_artifact(conversation: str, record: ToolCallRecord) -> str:
    """Where a tool call's full output is kept, below `artifacts/`."""
    return f"{TOOL_CALLS_DIR}/{conversation}/{tool_output_artifact(record.turn, record.call_id)}"


def record_drafts(
    state: State, conversation: str, record: Record, attempt: int | None, ctx: Context
) -> list[EventDraft]:
    """The event of one record (a tool call's output is left to its artifact)."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    stage = state["current_stage"]
    if isinstance(record, ConversationStarted):
        event_type, status = EventType.AGENT_CONVERSATION_STARTED, "started"
        data = record_to_json(record)
    elif isinstance(record, TurnRecord):
        event_type, status = EventType.AGENT_TURN_RECORDED, "recorded"
        data = record_to_json(record)
    else:
        event_type = EventType.AGENT_TOOL_CALLED
        status = "error" if record.is_error else "ok"
        data = record.event_data()
        data["artifact"] = tool_artifact(conversation, record)
    data.pop("type", None)
    batch.add(
        event_type,
        stage=stage,
        status=status,
        attempt=attempt,
        data={"conversation": conversation, **data},
    )
    return batch.drafts


def ended_drafts(
    state: State,
    conversation: str,
    attempt: int | None,
    data: JsonObject,
    ctx: Context,
    *,
    finished: bool,
) -> list[EventDraft]:
    """`agent_loop_finished` or `agent_loop_stopped` with what became of the work."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(
        EventType.AGENT_LOOP_FINISHED if finished else EventType.AGENT_LOOP_STOPPED,
        stage=state["current_stage"],
        status="finished" if finished else str(data["kind"]),
        attempt=attempt,
        data={"conversation": conversation, **data},
    )
    return batch.drafts


def open_conversation(
    events: Sequence[Event], stage: str, agent: str, earlier: Collection[str] = ()
) -> OpenConversation | None:
    """The latest conversation of `agent` on `stage` that neither finished nor was closed.

    A project sent back to an `earlier` stage since it began (a restart, a resume from an older
    checkpoint, a rejection) closes it too: its task is out of date. Back to `stage` itself
    (`somas resume` after a park) it continues.
    """
    starts = [
        e
        for e in events
        if e["event_type"] == EventType.AGENT_CONVERSATION_STARTED
        and e["data"]["stage"] == stage
        and e["data"]["agent"] == agent
    ]
    if not starts:
        return None
    begun = starts[-1]["seq"]
    if any(
        e["seq"] > begun and e["event_type"] in _REWINDS and e["to_stage"] in earlier
        for e in events
    ):
        return None
    cid = starts[-1]["data"]["conversation"]
    mine = tuple(e for e in events if e["data"].get("conversation") == cid)
    head = starts[-1]["data"]["base_commit"]
    for event in mine:
        if event["event_type"] == EventType.AGENT_LOOP_FINISHED:
            return None
        if event["event_type"] == EventType.AGENT_LOOP_STOPPED:
            if not event["data"]["resumable"]:
                return None
            head = event["data"].get("commit") or head
    return OpenConversation(cid, mine, head)


def records_of(events: Sequence[Event], read_output: Callable[[str, str], str]) -> list[Record]:
    """The records a conversation's events describe; `read_output(artifact, sha256)` gives a
    tool call's full output back (and refuses one that does not match its digest)."""
    records: list[Record] = []
    for event in events:
        # `command_id` is the engine's, on an event that began a command's batch.
        data: dict[str, Any] = {
            k: v for k, v in event["data"].items() if k not in ("conversation", "command_id")
        }
        kind = event["event_type"]
        if kind == EventType.AGENT_CONVERSATION_STARTED:
            records.append(record_from_json({"type": "conversation_started", **data}))
        elif kind == EventType.AGENT_TURN_RECORDED:
            records.append(record_from_json({"type": "turn", **data}))
        elif kind == EventType.AGENT_TOOL_CALLED:
            artifact = data.pop("artifact")
            data["output"] = read_output(artifact, data["sha256"])
            records.append(record_from_json({"type": "tool_call", **data}))
    return records


def conversations(events: Sequence[Event], stage: str | None = None) -> list[str]:
    """Every conversation id in the log (of one stage), in order."""
    return [
        e["data"]["conversation"]
        for e in events
        if e["event_type"] == EventType.AGENT_CONVERSATION_STARTED
        and (stage is None or e["data"]["stage"] == stage)
    ]


def conversation_events(events: Sequence[Event], conversation: str) -> list[Event]:
    """The events of one conversation, in order."""
    return [e for e in events if e["data"].get("conversation") == conversation]


def turns_of(events: Sequence[Event]) -> int:
    """How many model turns a conversation's events record."""
    return sum(1 for e in events if e["event_type"] == EventType.AGENT_TURN_RECORDED)


def ended(events: Sequence[Event]) -> bool:
    """Whether a conversation's events include its end."""
    return any(e["event_type"] in _ENDED for e in events)


def tool_loop_detail(event: Event) -> str:
    """One short line for a tool-loop event (progress output, traces)."""
    data = event["data"]
    kind = event["event_type"]
    if kind == EventType.AGENT_CONVERSATION_STARTED:
        return f"{data['agent']} starts, with {len(data['tools'])} tools"
    if kind == EventType.AGENT_TURN_RECORDED:
        calls = ", ".join(c["name"] for c in data["tool_calls"]) or "(text only)"
        return f"turn {data['turn']}: {calls}"
    if kind == EventType.AGENT_TOOL_CALLED:
        subject = call_subject(data["name"], data["arguments"])
        return f"  {data['name']} {subject} -> {event['status']}".replace("  ->", " ->")
    if kind == EventType.AGENT_LOOP_STOPPED:
        return f"loop stopped after {data['turns']} turns ({data['kind']}): {data['reason']}"
    changed = len(data["files"]) + len(data["deleted"])
    return f"loop finished after {data['turns']} turns, {changed} files changed"


def call_subject(name: str, arguments: dict[str, Any]) -> str:
    """What a tool call is about: its path (and lines), or its pattern."""
    if "path" in arguments:
        start, end = arguments.get("start"), arguments.get("end")
        lines = f":{start}-{end}" if start or end else ""
        return f"{arguments['path']}{lines}"
    value = arguments.get(_KEY_ARGUMENT.get(name, ""), "")
    return repr(value) if value else ""
