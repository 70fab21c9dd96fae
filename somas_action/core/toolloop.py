"""The tool loop: model turn -> tool calls -> results -> next turn, within bounds, on the record.

Provider-neutral and I/O-free: the model and the tools come in through two small ports. Before
every turn the loop checks the turn limit, the wall-clock deadline and the budget; a bound, a
provider error or a workspace failure ends it with `Stopped`, which carries the work so far
(the changed files) and why, so the caller can commit it and park. Every turn and tool call is
appended to `records` and passed to `report` as soon as it happened; `resume` turns those
records back into the conversation, so a later process continues where this one stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from somas_action.core.budget import BudgetGuard, cost_usd
from somas_action.core.clock import Clock
from somas_action.core.conversation import (
    NUDGE,
    AssistantTurn,
    ModelTurn,
    Record,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolResults,
    ToolSpec,
    Transcript,
    TurnRecord,
    UserText,
    resume,
    tool_call_record,
)
from somas_action.core.error_kinds import RUN_DEADLINE, TURN_LIMIT, WORKSPACE
from somas_action.core.errors import ProviderError, SomasError


@dataclass(frozen=True)
class ChangedFile:
    """A file the tools changed: its new content, or None when it was deleted."""

    path: str
    content: str | None


@dataclass(frozen=True)
class ToolExecution:
    """A tool call's result, the tree after it, and the finish arguments if it ended the work."""

    result: ToolResult
    tree: str
    finished: dict[str, Any] | None = None


class ToolPort(Protocol):
    """The repository tools, as the loop sees them."""

    def specs(self) -> list[ToolSpec]:
        """The tools offered to the model."""

    def restore(self, tree: str, done: Sequence[ToolCallRecord]) -> None:
        """Put the files back as they were after the recorded calls (`tree` is their git tree)."""

    def execute(self, call: ToolCall) -> ToolExecution:
        """Run one call; a bad call is an error result, never an exception."""

    def changes(self) -> list[ChangedFile]:
        """Every file changed since the conversation's base tree."""


class ModelPort(Protocol):
    """One model: each `turn` is one request (retries, breakers and fallback wrap it)."""

    @property
    def provider(self) -> str:
        """The provider answering (a fallback may change it between turns)."""

    @property
    def model(self) -> str:
        """The model answering."""

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """The model's next message, or a classified ProviderError."""


@dataclass(frozen=True)
class LoopLimits:
    """The bounds of one loop run (`deadline` is a `Clock.monotonic()` reading)."""

    max_turns: int
    max_output_tokens: int = 4096
    deadline: float | None = None
    # A turn may start only if it can end before the deadline (the provider's call timeout).
    reserve_seconds: float = 0.0
    price: tuple[float, float] | None = None
    # USD per million tokens of the model that answered a turn (a fallback may change it);
    # when given, it wins over `price`.
    price_of: Callable[[str], tuple[float, float] | None] | None = None


@dataclass(frozen=True)
class Finished:
    """The model called `finish`: its arguments, and the files it changed."""

    output: dict[str, Any]
    changes: tuple[ChangedFile, ...]
    turns: int


@dataclass(frozen=True)
class Stopped:
    """The loop stopped before `finish`: why (an error kind), and the work so far."""

    reason: str
    kind: str
    changes: tuple[ChangedFile, ...]
    turns: int
    retry_after: float | None = None


LoopOutcome = Finished | Stopped
Report = Callable[[Record], None]


@dataclass
class _Run:
    model: ModelPort
    tools: ToolPort
    records: list[Record]
    limits: LoopLimits
    clock: Clock
    guard: BudgetGuard
    report: Report

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.report(record)

    def stopped(self, reason: str, kind: str, turns: int, wait: float | None = None) -> Stopped:
        return Stopped(reason, kind, tuple(self.tools.changes()), turns, wait)


def run_tool_loop(
    model: ModelPort,
    tools: ToolPort,
    records: list[Record],
    limits: LoopLimits,
    clock: Clock,
    guard: BudgetGuard,
    report: Report,
) -> LoopOutcome:
    """Continue the conversation in `records` (new: just `conversation_started`) to an outcome."""
    run = _Run(model, tools, records, limits, clock, guard, report)
    state = resume(records)
    try:
        tools.restore(state.tree, state.done)
    except SomasError as exc:
        return Stopped(f"could not restore the recorded files: {exc}", WORKSPACE, (), state.turns)
    if state.finish is not None:
        return Finished(state.finish.arguments, tuple(tools.changes()), state.turns)
    transcript, turns = state.transcript, state.turns
    if state.pending:
        outcome = _execute(run, transcript, turns, state.pending, state.answered)
        if outcome is not None:
            return outcome
    while True:
        refusal = _bound_reached(run, transcript, turns)
        if refusal is not None:
            return refusal
        try:
            reply = model.turn(transcript, tools.specs(), limits.max_output_tokens)
        except ProviderError as exc:
            return run.stopped(str(exc), exc.kind, turns, exc.retry_after)
        turns += 1
        _record_turn(run, turns, reply)
        transcript.messages.append(AssistantTurn(reply.text, reply.tool_calls))
        if not reply.tool_calls:
            transcript.messages.append(UserText(NUDGE))
            continue
        outcome = _execute(run, transcript, turns, reply.tool_calls, ())
        if outcome is not None:
            return outcome


def _bound_reached(run: _Run, transcript: Transcript, turns: int) -> Stopped | None:
    """Why the next turn may not start (turns, deadline, budget), or None."""
    limits = run.limits
    if turns >= limits.max_turns:
        return run.stopped(
            f"the agent used its {limits.max_turns} turns (tool_loop.max_turns) without calling "
            "finish; raise it to let the conversation continue",
            TURN_LIMIT,
            turns,
        )
    if limits.deadline is not None and (
        run.clock.monotonic() + limits.reserve_seconds > limits.deadline
    ):
        return run.stopped(
            f"no time left in this run for turn {turns + 1}; continuing in the next run",
            RUN_DEADLINE,
            turns,
            0.0,
        )
    chars = transcript.chars() + sum(len(json.dumps(s.parameters)) for s in run.tools.specs())
    try:
        run.guard.check(run.model.provider, run.model.model, chars, limits.max_output_tokens)
    except ProviderError as exc:
        return run.stopped(str(exc), exc.kind, turns)
    return None


def _record_turn(run: _Run, number: int, reply: ModelTurn) -> None:
    limits = run.limits
    price = limits.price_of(run.model.model) if limits.price_of else limits.price
    cost = cost_usd(price, reply.input_tokens, reply.output_tokens)
    run.guard.spend(reply.input_tokens + reply.output_tokens, cost)
    run.add(
        TurnRecord(
            turn=number,
            provider=run.model.provider,
            model=run.model.model,
            text=reply.text,
            tool_calls=reply.tool_calls,
            stop_reason=reply.stop_reason,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=cost,
            chars_sent=reply.chars_sent,
        )
    )


def _execute(
    run: _Run,
    transcript: Transcript,
    turn: int,
    calls: Sequence[ToolCall],
    answered: tuple[ToolResult, ...],
) -> LoopOutcome | None:
    """Run `calls` in order, recording each; an outcome if one finished or the workspace failed."""
    results = list(answered)
    for call in calls:
        try:
            execution = run.tools.execute(call)
        except SomasError as exc:
            return run.stopped(f"tool {call.name} failed: {exc}", WORKSPACE, turn)
        run.add(tool_call_record(turn, execution.result, call, execution.tree))
        results.append(execution.result)
        if execution.finished is not None:
            return Finished(execution.finished, tuple(run.tools.changes()), turn)
    transcript.messages.append(ToolResults(tuple(results)))
    return None
