"""Anthropic Messages through the official `anthropic` SDK; structured output via a forced tool."""

from __future__ import annotations

import inspect
import json
from typing import Any

from somas_action.core.clock import Clock
from somas_action.core.error_kinds import TRANSIENT
from somas_action.core.errors import ProviderError
from somas_action.providers.http_errors import sdk_errors
from somas_action.providers.structured import Conversation, Reply, parse_json_text, repair_prompt


def tool_name(stage: str) -> str:
    """The one tool the model must call; its input is the stage's output."""
    return f"submit_{stage}_output"


class AnthropicMessagesClient:
    """The Anthropic API; every `send` is exactly one HTTP request."""

    provider = "anthropic"

    def __init__(self, base_url: str, api_key: str, timeout: float, clock: Clock) -> None:
        import anthropic  # an optional extra: imported only when a live provider needs it

        self.timeout = timeout
        self.clock = clock
        self._secrets = [api_key]
        self._anthropic = anthropic
        # max_retries=0: our retry layer alone decides, so the layers never multiply.
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )
        # Recent SDKs dropped the sampling temperature from Messages; send it only where the
        # installed SDK still has the parameter, so one agent file works with either.
        create = self._client.messages.create
        self._takes_temperature = "temperature" in inspect.signature(create).parameters

    def start(self, conversation: Conversation, user: str) -> None:
        """Put the user message into a new conversation (the system prompt is separate)."""
        conversation.messages = [{"role": "user", "content": user}]

    def send(self, conversation: Conversation) -> Reply:
        """One Messages call forcing the stage's output tool, whose input schema is ours."""
        anthropic = self._anthropic
        name = tool_name(conversation.stage)
        kwargs: dict[str, Any] = {
            "model": conversation.model,
            "max_tokens": conversation.max_tokens,
            "system": conversation.system,
            "messages": conversation.messages,
            "tools": [
                {
                    "name": name,
                    "description": f"Submit the {conversation.stage} stage's output.",
                    "input_schema": conversation.schema,
                }
            ],
            "tool_choice": {"type": "tool", "name": name},
        }
        if conversation.temperature is not None and self._takes_temperature:
            kwargs["temperature"] = conversation.temperature
        with sdk_errors(
            anthropic,
            self.provider,
            conversation.model,
            self.timeout,
            self.clock.now,
            self._secrets,
        ):
            message = self._client.messages.create(**kwargs)
        return self._reply(conversation, message)

    def _reply(self, conversation: Conversation, message: Any) -> Reply:
        if not hasattr(message, "content"):
            # The SDK hands back the raw text of a non-JSON answer (a proxy's error page).
            raise ProviderError(
                f"{self.provider}/{conversation.model}: unreadable response (not JSON)",
                kind=TRANSIENT,
                service=self.provider,
            )
        usage = message.usage
        tokens_in = int(getattr(usage, "input_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "output_tokens", 0) or 0)
        blocks = list(message.content or [])
        for block in blocks:
            if getattr(block, "type", None) == "tool_use":
                data = block.input
                content = [{"type": "tool_use", "id": block.id, "name": block.name, "input": data}]
                text = json.dumps(data)
                continuation = {"content": content, "tool_use_id": block.id}
                if message.stop_reason == "max_tokens":
                    problem = f"(top level): the reply was cut off at {conversation.max_tokens}"
                    return Reply(None, text, problem, tokens_in, tokens_out, continuation)
                if not isinstance(data, dict):
                    problem = "(top level): the tool input must be a JSON object"
                    return Reply(None, text, problem, tokens_in, tokens_out, continuation)
                return Reply(data, text, None, tokens_in, tokens_out, continuation)
        # No tool call (should not happen with a forced tool): accept a JSON text reply.
        text = "".join(getattr(b, "text", "") for b in blocks)
        data, why = parse_json_text(text)
        continuation = {"content": [{"type": "text", "text": text or "(empty)"}]}
        return Reply(data, text, why, tokens_in, tokens_out, continuation)

    def repair(self, conversation: Conversation, reply: Reply, problems: list[str]) -> None:
        """Answer the tool call with an error result saying what is wrong, so it tries again."""
        conversation.messages.append(
            {"role": "assistant", "content": reply.continuation["content"]}
        )
        feedback = repair_prompt(problems)
        if "tool_use_id" in reply.continuation:
            content: Any = [
                {
                    "type": "tool_result",
                    "tool_use_id": reply.continuation["tool_use_id"],
                    "is_error": True,
                    "content": feedback,
                }
            ]
        else:
            content = feedback
        conversation.messages.append({"role": "user", "content": content})
