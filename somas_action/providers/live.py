"""The live AgentProvider: an agent's model chain behind breakers, classified retries, a budget.

For one agent call: the `ai_api` breaker must let it through; then each model of the agent's
chain (`model`, then `fallback` in order) is tried until one returns a reply matching the
stage's schema. A model is skipped without any request when its provider's breaker is open.
What happened (failed calls, fallbacks, breaker changes, token usage) is reported through the
request's `observe` callback, and the runner records it in the project's log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from somas_action.config.schemas import problems_in
from somas_action.core.breaker import Transition
from somas_action.core.budget import BudgetGuard, cost_usd, price_for
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import JsonObject
from somas_action.core.error_kinds import (
    CIRCUIT_OPEN,
    CONFIG,
    INVALID_OUTPUT,
    RATE_LIMITED,
    RUN_DEADLINE,
    policy_for,
)
from somas_action.core.errors import ProviderError
from somas_action.core.events import EventType
from somas_action.core.ports import AgentRequest, Deferral, Observation
from somas_action.core.retry import call_with_retries
from somas_action.core.settings import Config, ModelRef
from somas_action.core.toolloop import ModelPort
from somas_action.providers.http_errors import provider_key
from somas_action.providers.live_tools import LiveToolModel
from somas_action.providers.structured import (
    Conversation,
    Reply,
    flatten,
    system_prompt,
    user_prompt,
)
from somas_action.state.breakers import AI_API, CircuitBreaker

Observe = Callable[[Observation], None]
T = TypeVar("T")


class ModelClient(Protocol):
    """One provider's API, one HTTP request per `send` (the SDK adapters implement it)."""

    def start(self, conversation: Conversation, user: str) -> None:
        """Fill a new conversation's first messages."""

    def send(self, conversation: Conversation) -> Reply:
        """Make exactly one request; raise a classified ProviderError on failure."""

    def repair(self, conversation: Conversation, reply: Reply, problems: list[str]) -> None:
        """Append an invalid reply and the problems with it, for the next `send`."""


class LiveProvider:
    """Calls OpenAI, GitHub Models and Anthropic through their SDKs."""

    name = "live"

    def __init__(self, repo: Path, config: Config, clock: Clock, actor: str = "somas") -> None:
        self.repo = repo
        self.clock = clock
        self.actor = actor
        self.providers = config.agent_provider.providers
        self.pricing = config.agent_provider.pricing
        self.retry = config.agent_provider.retry
        self.breaker_settings = config.error_handling.circuit_breaker
        self._clients: dict[str, ModelClient] = {}

    def breaker(self, service: str) -> CircuitBreaker:
        """The shared breaker of a service, on this run's clock."""
        return CircuitBreaker(
            service,
            repo=self.repo,
            clock=self.clock,
            settings=self.breaker_settings,
            actor=self.actor,
        )

    # -- before a call -------------------------------------------------------------------------

    def unavailable(self, models: tuple[ModelRef, ...]) -> Deferral | None:
        """A Deferral when no model of the chain can be called now (all behind open breakers)."""
        services = [AI_API]
        blocked, until = self.breaker(AI_API).blocked_until()
        untils = [until]
        if not blocked:
            if not models:
                return None  # nothing to call: `invoke` explains the missing model
            services, untils = [], []
            for model in models:
                blocked, until = self.breaker(model.provider).blocked_until()
                if not blocked:
                    return None
                services.append(model.provider)
                untils.append(until)
        known = [u for u in untils if u is not None]
        retry_at = format_ts(min(known)) if known else None
        return Deferral(
            reason=f"circuit breaker open for {', '.join(dict.fromkeys(services))}; no call made",
            kind=CIRCUIT_OPEN,
            retry_at=retry_at,
            services=tuple(dict.fromkeys(services)),
        )

    def tool_model(self, request: AgentRequest) -> ModelPort | None:
        """The agent's model chain as one tool-loop model (every provider here calls tools)."""
        return LiveToolModel(self, request)

    # -- the call ----------------------------------------------------------------------------

    def invoke(self, request: AgentRequest) -> JsonObject:
        """Walk the agent's model chain until one model returns a valid reply."""
        chain = [m for m in (request.model, *request.options.fallback) if m]
        if not chain:
            raise ProviderError(
                f".somas/agents/{request.agent}.yml: model: missing; a live provider needs "
                "`model: {provider: openai, name: gpt-4o}` (and optionally `fallback:`)",
                kind=CONFIG,
            )
        observe = request.options.observe
        ai_api = self.breaker(AI_API)
        self.note(observe, ai_api.acquire())
        guard = BudgetGuard(request.options.budget, self.pricing)
        failures: list[tuple[ModelRef, ProviderError]] = []
        try:
            for model in chain:
                if failures:
                    previous, error = failures[-1]
                    observe(
                        Observation(
                            EventType.PROVIDER_FALLBACK,
                            "fallback",
                            {"from": previous.label, "to": model.label, "because": error.kind},
                        )
                    )
                try:
                    output = self._call_model(model, request, guard, observe)
                except ProviderError as exc:
                    failures.append((model, exc))
                    if not policy_for(exc.kind).fallback:
                        break
                    continue
                self.note(observe, ai_api.record_success())
                return output
        except BaseException:
            ai_api.release()  # interrupted: no verdict on the AI layer
            raise
        final = self.final_error(failures)
        if any(policy_for(exc.kind).counts_for_breaker for _, exc in failures):
            self.note(observe, ai_api.record_failure(final.kind, str(final)))
        else:
            ai_api.release()
        raise final

    def _call_model(
        self, model: ModelRef, request: AgentRequest, guard: BudgetGuard, observe: Observe
    ) -> JsonObject:
        provider, name = model.provider, model.name
        client = self._client(provider, name)
        breaker = self.breaker(provider)
        timeout = self.providers[provider].timeout_seconds
        schema = flatten(request.output_schema)
        conversation = Conversation(
            model=name,
            stage=request.stage,
            system=system_prompt(request.agent, request.instructions, schema),
            schema=schema,
            max_tokens=request.options.max_output_tokens,
            temperature=request.options.temperature,
        )
        client.start(conversation, user_prompt(request.stage, request.attempt, request.inputs))
        affordable = self.affordable(timeout, request.options.deadline)

        def one_call(number: int) -> JsonObject:
            self.check_time(model, timeout, affordable)
            guard.check(provider, name, conversation.size(), conversation.max_tokens)
            self.note(observe, breaker.acquire())
            reply = self.send_one(
                lambda: client.send(conversation), breaker, model, number, observe
            )
            return self._judge(client, conversation, reply, model, number, request, guard, observe)

        return self.with_retries(one_call, breaker, affordable, observe)

    def affordable(self, timeout: float, deadline: float | None) -> Callable[[float], bool]:
        """Whether a wait of so many seconds, then one call, still fits the run and the policy."""

        def check(wait: float) -> bool:
            if wait > self.retry.max_wait_seconds:
                return False
            return deadline is None or self.clock.monotonic() + wait + timeout <= deadline

        return check

    def check_time(
        self, model: ModelRef, timeout: float, affordable: Callable[[float], bool]
    ) -> None:
        """Refuse a call that might not end before the run's deadline (run_deadline)."""
        if not affordable(0.0):
            raise ProviderError(
                f"{model.label}: the run has less than one call timeout ({timeout:g}s) "
                "left; continuing in the next run",
                kind=RUN_DEADLINE,
                retry_after=0.0,
                service=model.provider,
            )

    def with_retries(
        self,
        one_call: Callable[[int], T],
        breaker: CircuitBreaker,
        affordable: Callable[[float], bool],
        observe: Observe,
    ) -> T:
        """`one_call(n)` under the classified retries; a Retry-After longer than this run can
        wait opens the service's breaker until then (nobody should call before)."""
        try:
            return call_with_retries(
                one_call,
                settings=self.retry,
                clock=self.clock,
                affordable=affordable,
                give_up=lambda: breaker.blocked_until()[0],
            )
        except ProviderError as exc:
            wait = exc.retry_after
            if exc.kind == RATE_LIMITED and wait is not None and not affordable(wait):
                until = self.clock.now() + timedelta(seconds=wait)
                self.note(observe, breaker.open_until(until, f"rate limited for {wait:g}s"))
            raise

    def send_one(
        self,
        request: Callable[[], T],
        breaker: CircuitBreaker,
        model: ModelRef,
        number: int,
        observe: Observe,
    ) -> T:
        """Make one request behind `breaker`, reporting a failure; the breaker learns either way."""
        try:
            reply = request()
        except ProviderError as exc:
            if policy_for(exc.kind).counts_for_breaker:
                self.note(observe, breaker.record_failure(exc.kind, str(exc)))
            else:
                breaker.release()
            observe(
                Observation(
                    EventType.PROVIDER_CALL_FAILED,
                    exc.kind,
                    {**self._model_fields(model, number), "error": exc.record()},
                )
            )
            raise
        except BaseException:
            breaker.release()
            raise
        # The service answered: whatever the content, it is up.
        self.note(observe, breaker.record_success())
        return reply

    def _judge(
        self,
        client: ModelClient,
        conversation: Conversation,
        reply: Reply,
        model: ModelRef,
        number: int,
        request: AgentRequest,
        guard: BudgetGuard,
        observe: Observe,
    ) -> JsonObject:
        price = price_for(model.name, self.pricing)
        cost = cost_usd(price, reply.input_tokens, reply.output_tokens)
        guard.spend(reply.input_tokens + reply.output_tokens, cost)
        observe(
            Observation(
                EventType.AGENT_USAGE_RECORDED,
                "recorded",
                {
                    **self._model_fields(model, number),
                    "input_tokens": reply.input_tokens,
                    "output_tokens": reply.output_tokens,
                    "cost_usd": cost,
                    "priced": price is not None,
                },
            )
        )
        problems = (
            [reply.problem] if reply.problem else problems_in(request.output_schema, reply.data)
        )
        if not problems:
            return reply.data  # type: ignore[no-any-return]
        observe(
            Observation(
                EventType.AGENT_OUTPUT_REJECTED,
                INVALID_OUTPUT,
                {**self._model_fields(model, number), "problems": problems},
            )
        )
        client.repair(conversation, reply, problems)
        raise ProviderError(
            f"{model.label}: reply does not match the {request.stage} output schema: {problems[0]}",
            kind=INVALID_OUTPUT,
            service=model.provider,
        )

    # -- helpers -----------------------------------------------------------------------------

    def _client(self, provider: str, model: str) -> ModelClient:
        if provider in self._clients:
            return self._clients[provider]
        key = provider_key(provider, model)
        settings = self.providers[provider]
        try:
            client: ModelClient
            if provider == "anthropic":
                from somas_action.providers.anthropic_client import AnthropicMessagesClient

                client = AnthropicMessagesClient(
                    settings.base_url, key, settings.timeout_seconds, self.clock
                )
            else:
                from somas_action.providers.openai_client import OpenAIChatClient

                client = OpenAIChatClient(
                    provider, settings.base_url, key, settings.timeout_seconds, self.clock
                )
        except ImportError:
            extra = "anthropic" if provider == "anthropic" else "openai"
            raise ProviderError(
                f"{provider}/{model}: the {extra} SDK is not installed; "
                f"pip install 'somas-action[{extra}]'",
                kind=CONFIG,
                service=provider,
            ) from None
        self._clients[provider] = client
        return client

    def final_error(self, failures: list[tuple[ModelRef, ProviderError]]) -> ProviderError:
        """The one error an exhausted chain reports, classified for the runner.

        Park (circuit_open) when some model is behind an open breaker and no other could help
        on a retry; retry the stage when some model failed transiently; else report the
        primary model's error (auth, quota, permanent ...) so a person can act on it.
        """
        last = failures[-1][1]
        if not policy_for(last.kind).fallback:
            return last
        summary = "; ".join(
            str(e) if str(e).startswith(m.label) else f"{m.label}: {e}" for m, e in failures
        )
        blocked: dict[str, float | None] = {}
        retryable = []
        for model, exc in failures:
            is_blocked, until = self.breaker(model.provider).blocked_until()
            if is_blocked:
                wait = None if until is None else (until - self.clock.now()).total_seconds()
                blocked[model.provider] = wait
            elif policy_for(exc.kind).retry_stage:
                retryable.append(exc)
        if blocked and not retryable:
            waits = [w for w in blocked.values() if w is not None]
            return ProviderError(
                f"every model is unavailable: {summary}",
                kind=CIRCUIT_OPEN,
                retry_after=max(min(waits), 0.0) if waits else None,
                services=tuple(blocked),
            )
        chosen = retryable[-1] if retryable else failures[0][1]
        return ProviderError(
            summary,
            kind=chosen.kind,
            retry_after=chosen.retry_after,
            services=chosen.services,
            status=chosen.status,
        )

    def note(self, observe: Observe, transition: Transition | None) -> None:
        """Report a breaker's state change (if any) as an observation."""
        if transition is not None:
            observe(transition.observation())

    @staticmethod
    def _model_fields(model: ModelRef, number: int) -> JsonObject:
        return {"provider": model.provider, "model": model.name, "call": number}
