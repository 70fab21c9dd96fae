"""OpenAI Chat Completions through the official `openai` SDK (OpenAI and GitHub Models)."""

from __future__ import annotations

from typing import Any

from somas_action.core.clock import Clock
from somas_action.core.error_kinds import PERMANENT, TRANSIENT
from somas_action.core.errors import ProviderError
from somas_action.providers.http_errors import sdk_errors
from somas_action.providers.structured import Conversation, Reply, parse_json_text, repair_prompt


class OpenAIChatClient:
    """One OpenAI-compatible endpoint; every `send` is exactly one HTTP request."""

    def __init__(
        self, provider: str, base_url: str, api_key: str, timeout: float, clock: Clock
    ) -> None:
        import openai  # an optional extra: imported only when a live provider needs it

        self.provider = provider
        self.timeout = timeout
        self.clock = clock
        self._secrets = [api_key]
        self._openai = openai
        # max_retries=0: our retry layer alone decides, so the layers never multiply.
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )

    def start(self, conversation: Conversation, user: str) -> None:
        """Put the system and user messages into a new conversation."""
        conversation.messages = [
            {"role": "system", "content": conversation.system},
            {"role": "user", "content": user},
        ]

    def send(self, conversation: Conversation) -> Reply:
        """One chat completion asking for JSON that matches the conversation's schema."""
        openai = self._openai
        kwargs: dict[str, Any] = {
            "model": conversation.model,
            "messages": conversation.messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": f"{conversation.stage}_output",
                    "schema": conversation.schema,
                    "strict": False,
                },
            },
        }
        # GitHub Models speaks the older parameter; OpenAI's newer models require the new one.
        limit = "max_tokens" if self.provider == "github-models" else "max_completion_tokens"
        kwargs[limit] = conversation.max_tokens
        if conversation.temperature is not None:
            kwargs["temperature"] = conversation.temperature
        with sdk_errors(
            openai, self.provider, conversation.model, self.timeout, self.clock.now, self._secrets
        ):
            completion = self._client.chat.completions.create(**kwargs)
        return self._reply(conversation, completion)

    def _reply(self, conversation: Conversation, completion: Any) -> Reply:
        if not hasattr(completion, "choices"):
            # The SDK hands back the raw text of a non-JSON answer (a proxy's error page).
            raise ProviderError(
                f"{self.provider}/{conversation.model}: unreadable response (not JSON)",
                kind=TRANSIENT,
                service=self.provider,
            )
        usage = completion.usage
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        if not completion.choices:
            raise ProviderError(
                f"{self.provider}/{conversation.model}: the response has no choices",
                kind=PERMANENT,
                service=self.provider,
            )
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            # A content refusal is an answer, not an outage: it never counts against a breaker.
            raise ProviderError(
                f"{self.provider}/{conversation.model}: the model refused: {message.refusal}",
                kind=PERMANENT,
                service=self.provider,
            )
        text = message.content or ""
        if choice.finish_reason == "length":
            problem = f"(top level): the reply was cut off at {conversation.max_tokens} tokens"
            return Reply(None, text, problem, tokens_in, tokens_out)
        data, why = parse_json_text(text)
        return Reply(data, text, why, tokens_in, tokens_out)

    def repair(self, conversation: Conversation, reply: Reply, problems: list[str]) -> None:
        """Send the invalid reply back with what is wrong with it."""
        conversation.messages += [
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": repair_prompt(problems)},
        ]
