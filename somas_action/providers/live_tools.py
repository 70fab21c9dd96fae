"""The live provider in a tool loop: an agent's model chain answering one turn at a time.

Each turn is one request to the current model through its SDK tool client, behind the same
`ai_api` and per-provider breakers, classified retries and run deadline as a structured call
(`LiveProvider`). A model that fails in a way the fallback policy allows hands the conversation
to the next model of the chain for the rest of this run: the transcript is provider-neutral, so
an Anthropic model can continue what an OpenAI model began. The loop checks the budget itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from somas_action.core.breaker import Transition
from somas_action.core.clock import Clock
from somas_action.core.conversation import ModelTurn, ToolSpec, Transcript
from somas_action.core.error_kinds import CONFIG, policy_for
from somas_action.core.errors import ProviderError
from somas_action.core.events import EventType
from somas_action.core.ports import AgentRequest, Observation
from somas_action.core.settings import ModelRef, ProviderSettings
from somas_action.providers.http_errors import provider_key
from somas_action.state.breakers import AI_API, CircuitBreaker

T = TypeVar("T")
Observe = Callable[[Observation], None]


class ToolClient(Protocol):
    """One provider's tool-calling API (`OpenAIToolClient`, `AnthropicToolClient`)."""

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """Exactly one request."""


class CallHost(Protocol):
    """What the tool model uses of `LiveProvider`: breakers, the retry policy, reporting."""

    clock: Clock
    providers: Mapping[str, ProviderSettings]

    def breaker(self, service: str) -> CircuitBreaker:
        """The shared breaker of a service."""

    def affordable(self, timeout: float, deadline: float | None) -> Callable[[float], bool]:
        """Whether a wait then one call fits the run."""

    def check_time(
        self, model: ModelRef, timeout: float, affordable: Callable[[float], bool]
    ) -> None:
        """Refuse a call that cannot end before the deadline."""

    def with_retries(
        self,
        one_call: Callable[[int], T],
        breaker: CircuitBreaker,
        affordable: Callable[[float], bool],
        observe: Observe,
    ) -> T:
        """`one_call(n)` under the classified retries."""

    def send_one(
        self,
        request: Callable[[], T],
        breaker: CircuitBreaker,
        model: ModelRef,
        number: int,
        observe: Observe,
    ) -> T:
        """One request behind `breaker`."""

    def note(self, observe: Observe, transition: Transition | None) -> None:
        """Report a breaker change."""

    def final_error(self, failures: list[tuple[ModelRef, ProviderError]]) -> ProviderError:
        """The error an exhausted chain reports."""


class LiveToolModel:
    """A ModelPort over an agent's model chain (`provider` and `model` name the current one)."""

    def __init__(self, host: CallHost, request: AgentRequest) -> None:
        self.host = host
        self.chain = [m for m in (request.model, *request.options.fallback) if m]
        if not self.chain:
            raise ProviderError(
                f".somas/agents/{request.agent}.yml: model: missing; a live provider needs "
                "`model: {provider: openai, name: gpt-4o}` (and optionally `fallback:`)",
                kind=CONFIG,
            )
        self.index = 0
        self.deadline = request.options.deadline
        self.temperature = request.options.temperature
        self.observe = request.options.observe
        self._clients: dict[str, ToolClient] = {}

    @property
    def provider(self) -> str:
        """The provider answering now."""
        return self.chain[self.index].provider

    @property
    def model(self) -> str:
        """The model answering now."""
        return self.chain[self.index].name

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """The next turn from the current model, or from the next ones of the chain."""
        ai_api = self.host.breaker(AI_API)
        self.host.note(self.observe, ai_api.acquire())
        failures: list[tuple[ModelRef, ProviderError]] = []
        try:
            while True:
                model = self.chain[self.index]
                try:
                    reply = self._call(model, transcript, tools, max_tokens)
                except ProviderError as exc:
                    failures.append((model, exc))
                    if not policy_for(exc.kind).fallback or self.index + 1 == len(self.chain):
                        break
                    self._fall_back(model, exc)
                    continue
                self.host.note(self.observe, ai_api.record_success())
                return reply
        except BaseException:
            ai_api.release()  # interrupted: no verdict on the AI layer
            raise
        final = self.host.final_error(failures)
        if any(policy_for(exc.kind).counts_for_breaker for _, exc in failures):
            self.host.note(self.observe, ai_api.record_failure(final.kind, str(final)))
        else:
            ai_api.release()
        raise final

    def _fall_back(self, model: ModelRef, error: ProviderError) -> None:
        self.index += 1
        to = self.chain[self.index]
        self.observe(
            Observation(
                EventType.PROVIDER_FALLBACK,
                "fallback",
                {"from": model.label, "to": to.label, "because": error.kind},
            )
        )

    def _call(
        self, model: ModelRef, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int
    ) -> ModelTurn:
        client = self._client(model)
        breaker = self.host.breaker(model.provider)
        timeout = self.host.providers[model.provider].timeout_seconds
        affordable = self.host.affordable(timeout, self.deadline)

        def one_call(number: int) -> ModelTurn:
            self.host.check_time(model, timeout, affordable)
            self.host.note(self.observe, breaker.acquire())
            return self.host.send_one(
                lambda: client.turn(transcript, tools, max_tokens),
                breaker,
                model,
                number,
                self.observe,
            )

        return self.host.with_retries(one_call, breaker, affordable, self.observe)

    def _client(self, model: ModelRef) -> ToolClient:
        """The SDK client of a model (one per model: tool clients carry the model name)."""
        if model.label in self._clients:
            return self._clients[model.label]
        key = provider_key(model.provider, model.name)
        settings = self.host.providers[model.provider]
        client: ToolClient
        try:
            if model.provider == "anthropic":
                from somas_action.providers.anthropic_tools import AnthropicToolClient

                client = AnthropicToolClient(
                    model.name,
                    settings.base_url,
                    key,
                    settings.timeout_seconds,
                    self.host.clock,
                    self.temperature,
                )
            else:
                from somas_action.providers.openai_tools import OpenAIToolClient

                client = OpenAIToolClient(
                    model.provider,
                    model.name,
                    settings.base_url,
                    key,
                    settings.timeout_seconds,
                    self.host.clock,
                    self.temperature,
                )
        except ImportError:
            extra = "anthropic" if model.provider == "anthropic" else "openai"
            raise ProviderError(
                f"{model.label}: the {extra} SDK is not installed; "
                f"pip install 'somas-action[{extra}]'",
                kind=CONFIG,
                service=model.provider,
            ) from None
        self._clients[model.label] = client
        return client
