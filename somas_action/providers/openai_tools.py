"""Tool calling through OpenAI Chat Completions (`tools`, `tool_calls`, `role: tool` messages).

One `turn` is one HTTP request through the official SDK (max_retries=0: our retry layer alone
decides), with the same error translation as the structured-output client. Works for OpenAI
and GitHub Models (the same wire format).
"""

from __future__ import annotations

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
from somas_action.core.error_kinds import PERMANENT, TRANSIENT
from somas_action.core.errors import ProviderError
from somas_action.providers.http_errors import sdk_errors


def openai_messages(transcript: Transcript) -> list[dict[str, Any]]:
    """The transcript as Chat Completions messages."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": transcript.system}]
    for message in transcript.messages:
        if isinstance(message, UserText):
            messages.append({"role": "user", "content": message.text})
        elif isinstance(message, AssistantTurn):
            messages.append(_assistant(message))
        else:
            messages.extend(_tool_messages(message))
    return messages


def _assistant(turn: AssistantTurn) -> dict[str, Any]:
    if not turn.tool_calls:
        return {"role": "assistant", "content": turn.text}
    calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for call in turn.tool_calls
    ]
    # content may be null beside tool calls; "" is refused by some compatible servers.
    return {"role": "assistant", "content": turn.text or None, "tool_calls": calls}


def _tool_messages(results: ToolResults) -> list[dict[str, Any]]:
    # Chat Completions has no error flag: the content's `error:` prefix says it.
    return [
        {"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in results.results
    ]


def openai_tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tool specs as Chat Completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            },
        }
        for spec in specs
    ]


def parse_tool_calls(raw_calls: Any, cut_off: bool) -> tuple[ToolCall, ...]:
    """The SDK's `message.tool_calls` as ToolCalls; unreadable arguments carry a problem."""
    calls = []
    for raw in raw_calls or []:
        function = getattr(raw, "function", None)
        if function is None:  # a non-function (custom) tool call: we offer none
            calls.append(ToolCall(raw.id, "unknown", {}, "only function tools are offered"))
            continue
        try:
            arguments = json.loads(function.arguments or "{}")
            problem = None if isinstance(arguments, dict) else "arguments must be a JSON object"
        except ValueError:
            arguments, problem = {}, "the arguments are not valid JSON"
        if problem and cut_off:
            problem += " (the reply was cut off at the output token limit: make smaller edits)"
        calls.append(
            ToolCall(
                raw.id, function.name, arguments if isinstance(arguments, dict) else {}, problem
            )
        )
    return tuple(calls)


class OpenAIToolClient:
    """A model behind an OpenAI-compatible endpoint, one request per `turn`."""

    def __init__(
        self,
        provider: str,
        model: str,
        base_url: str,
        api_key: str,
        timeout: float,
        clock: Clock,
        temperature: float | None = None,
    ) -> None:
        import openai  # an optional extra: imported only when a live provider needs it

        self.provider = provider
        self.model = model
        self.timeout = timeout
        self.clock = clock
        self.temperature = temperature
        self._secrets = [api_key]
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """One chat completion that must call one of `tools`."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(transcript),
            "tools": openai_tools(tools),
            # Every turn must act: text alone would waste a turn (finish ends the work).
            "tool_choice": "required",
        }
        # GitHub Models speaks the older parameter; OpenAI's newer models require the new one.
        limit = "max_tokens" if self.provider == "github-models" else "max_completion_tokens"
        kwargs[limit] = max_tokens
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        sent = len(json.dumps(kwargs))
        with sdk_errors(
            self._openai, self.provider, self.model, self.timeout, self.clock.now, self._secrets
        ):
            completion = self._client.chat.completions.create(**kwargs)
        return self._turn(completion, sent)

    def _turn(self, completion: Any, sent: int) -> ModelTurn:
        label = f"{self.provider}/{self.model}"
        if not hasattr(completion, "choices"):
            raise ProviderError(
                f"{label}: unreadable response (not JSON)", kind=TRANSIENT, service=self.provider
            )
        if not completion.choices:
            raise ProviderError(
                f"{label}: the response has no choices", kind=PERMANENT, service=self.provider
            )
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise ProviderError(
                f"{label}: the model refused: {message.refusal}",
                kind=PERMANENT,
                service=self.provider,
            )
        usage = completion.usage
        return ModelTurn(
            text=message.content or "",
            tool_calls=parse_tool_calls(message.tool_calls, choice.finish_reason == "length"),
            stop_reason=str(choice.finish_reason),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            chars_sent=sent,
        )
