"""Token prices, call costs, and the per-project budget checked before every call."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from somas_action.core.domain import UsageTotals
from somas_action.core.error_kinds import BUDGET, CONFIG
from somas_action.core.errors import ProviderError
from somas_action.core.settings import BudgetLimits, Price

# USD per million tokens (input, output): list prices when this was written. Prices change;
# `agent_provider.pricing` in config.yml overrides or extends this table.
BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-3-5-sonnet-latest": (3.00, 15.00),
    "claude-3-5-haiku-latest": (0.80, 4.00),
    "claude-sonnet-4-20250514": (3.00, 15.00),
}
# Tokens are estimated before a call from characters; 3 characters a token over-estimates
# English and JSON, which is the safe side for a budget that must never be exceeded.
CHARS_PER_TOKEN = 3


def price_for(model: str, pricing: Mapping[str, Price]) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for `model` (GitHub Models' `openai/gpt-4o` too)."""
    for name in (model, model.split("/", 1)[-1]):
        if name in pricing:
            entry = pricing[name]
            return entry.input_per_mtok, entry.output_per_mtok
        if name in BUILTIN_PRICES:
            return BUILTIN_PRICES[name]
    return None


def cost_usd(price: tuple[float, float] | None, input_tokens: int, output_tokens: int) -> float:
    """What a call cost (0.0 when the price is unknown)."""
    if price is None:
        return 0.0
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 6)


@dataclass(frozen=True)
class Budget:
    """A project's limits (`agent_provider.budget`) and what it has spent so far."""

    limits: BudgetLimits
    spent_cost_usd: float
    spent_tokens: int

    @property
    def exhausted(self) -> bool:
        """Whether a limit is already reached (no further call can fit)."""
        limits = self.limits
        over_cost = limits.max_cost_usd is not None and self.spent_cost_usd >= limits.max_cost_usd
        over_tokens = limits.max_tokens is not None and self.spent_tokens >= limits.max_tokens
        return over_cost or over_tokens


def budget_for(limits: BudgetLimits, usage: UsageTotals | None) -> Budget | None:
    """The budget of a project that has used `usage` (None when no limit is set)."""
    if not limits.enabled:
        return None
    if usage is None:
        return Budget(limits, 0.0, 0)
    return Budget(limits, usage["cost_usd"], usage["input_tokens"] + usage["output_tokens"])


class BudgetGuard:
    """The project's remaining budget during one agent call; refuses a call that could exceed it."""

    def __init__(self, budget: Budget | None, pricing: Mapping[str, Price]) -> None:
        self.max_cost = budget.limits.max_cost_usd if budget else None
        self.max_tokens = budget.limits.max_tokens if budget else None
        self.spent_cost = budget.spent_cost_usd if budget else 0.0
        self.spent_tokens = budget.spent_tokens if budget else 0
        self.pricing = pricing

    def check(self, provider: str, model: str, prompt_chars: int, max_output_tokens: int) -> None:
        """Raise ProviderError(budget_exhausted) if the next call could exceed the budget."""
        if self.max_cost is None and self.max_tokens is None:
            return
        worst_tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN) + max_output_tokens
        where = "agent_provider.budget"
        then = "raise it in .somas/config.yml, then restart the stage"
        if self.max_tokens is not None and self.spent_tokens + worst_tokens > self.max_tokens:
            raise ProviderError(
                f"project token budget: the next call to {provider}/{model} could use up to "
                f"{worst_tokens} tokens and the project has used {self.spent_tokens} of "
                f"{where}.max_tokens {self.max_tokens}; {then}",
                kind=BUDGET,
            )
        if self.max_cost is None:
            return
        price = price_for(model, self.pricing)
        if price is None:
            raise ProviderError(
                f"agent_provider.pricing: no price for model {model!r}, so {where}.max_cost_usd "
                "cannot be enforced; add {input_per_mtok, output_per_mtok} for it",
                kind=CONFIG,
            )
        worst = cost_usd(price, math.ceil(prompt_chars / CHARS_PER_TOKEN), max_output_tokens)
        if self.spent_cost + worst > self.max_cost:
            raise ProviderError(
                f"project cost budget: the next call to {provider}/{model} could cost up to "
                f"${worst:.4f} and the project has spent ${self.spent_cost:.4f} of "
                f"{where}.max_cost_usd ${self.max_cost:.2f}; {then}",
                kind=BUDGET,
            )

    def spend(self, tokens: int, cost: float) -> None:
        """Count a call's real usage against the remaining budget."""
        self.spent_tokens += tokens
        self.spent_cost += cost
