"""Tool calling through Anthropic Messages (`tools`, `tool_use` and `tool_result` blocks).

One `turn` is one HTTP request through the official SDK (max_retries=0), with the same error
translation as the structured-output client.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

from somas_action.core.clock import Clock
from somas_action.core.conversation import (
    AssistantTurn,
    ModelTurn,
    ToolCall,
    ToolResults,
    ToolSpec,
    Transcript,
    UserText,
)
from somas_action.core.error_kinds import TRANSIENT
from somas_action.core.errors import ProviderError
from somas_action.providers.http_errors import sdk_errors

_CUT_OFF = "the reply was cut off at the output token limit: make smaller edits"


def anthropic_messages(transcript: Transcript) -> list[dict[str, Any]]:
    """The transcript as Messages API messages (the system prompt travels separately)."""
    messages: list[dict[str, Any]] = []
    for message in transcript.messages:
        if isinstance(message, UserText):
            messages.append({"role": "user", "content": message.text})
        elif isinstance(message, AssistantTurn):
            messages.append({"role": "assistant", "content": _assistant_blocks(message)})
        else:
            messages.append({"role": "user", "content": _result_blocks(message)})
    return messages


def _assistant_blocks(turn: AssistantTurn) -> list[dict[str, Any]]:
    # The API refuses empty text blocks, so a turn with only tool calls has none.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
        for c in turn.tool_calls
    ]
    return blocks or [{"type": "text", "text": "(no reply)"}]


def _result_blocks(results: ToolResults) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_result",
            "tool_use_id": r.call_id,
            "content": r.content,
            "is_error": r.is_error,
        }
        for r in results.results
    ]


def anthropic_tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tool specs as Messages API tools."""
    return [
        {"name": s.name, "description": s.description, "input_schema": s.parameters} for s in specs
    ]


def parse_blocks(blocks: Any, cut_off: bool) -> tuple[str, tuple[ToolCall, ...]]:
    """(text, tool calls) of a response's content blocks."""
    text, calls = [], []
    for block in blocks or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            text.append(block.text)
        elif kind == "tool_use":
            data = block.input
            problem = None if isinstance(data, dict) else "the input must be a JSON object"
            if cut_off:
                problem = _CUT_OFF
            calls.append(
                ToolCall(block.id, block.name, data if isinstance(data, dict) else {}, problem)
            )
    return "".join(text), tuple(calls)


class AnthropicToolClient:
    """An Anthropic model, one request per `turn`."""

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str,
        timeout: float,
        clock: Clock,
        temperature: float | None = None,
    ) -> None:
        import anthropic  # an optional extra: imported only when a live provider needs it

        self.model = model
        self.timeout = timeout
        self.clock = clock
        self._secrets = [api_key]
        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )
        # Recent SDKs dropped `temperature` from Messages; send it only where it still exists.
        takes = "temperature" in inspect.signature(self._client.messages.create).parameters
        self.temperature = temperature if takes else None

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """One Messages call that must use one of `tools`."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": transcript.system,
            "messages": anthropic_messages(transcript),
            "tools": anthropic_tools(tools),
            # Every turn must act: text alone would waste a turn (finish ends the work).
            "tool_choice": {"type": "any"},
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        sent = len(json.dumps(kwargs))
        with sdk_errors(
            self._anthropic,
            self.provider,
            self.model,
            self.timeout,
            self.clock.now,
            self._secrets,
        ):
            message = self._client.messages.create(**kwargs)
        return self._turn(message, sent)

    def _turn(self, message: Any, sent: int) -> ModelTurn:
        if not hasattr(message, "content"):
            raise ProviderError(
                f"{self.provider}/{self.model}: unreadable response (not JSON)",
                kind=TRANSIENT,
                service=self.provider,
            )
        text, calls = parse_blocks(message.content, message.stop_reason == "max_tokens")
        usage = message.usage
        return ModelTurn(
            text=text,
            tool_calls=calls,
            stop_reason=str(message.stop_reason),
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            chars_sent=sent,
        )
