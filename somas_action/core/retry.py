"""Classified retries of one model call, built on tenacity, with an injected clock.

This is the only retry layer inside an agent call: the SDKs are built with `max_retries=0`, so
the number of HTTP requests to one model for one agent call is at most `max_calls`, whatever
the errors. A wait the run cannot afford (longer than `max_wait_seconds`, or past the run's
deadline) is never slept: the retrying stops and the caller decides (fallback, or park).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from somas_action.core.clock import Clock
from somas_action.core.error_kinds import INVALID_OUTPUT, policy_for
from somas_action.core.errors import ProviderError
from somas_action.core.settings import CallRetrySettings

T = TypeVar("T")


def retryable(exc: BaseException) -> bool:
    """Whether the same model may be called again after `exc` within one agent call."""
    return isinstance(exc, ProviderError) and policy_for(exc.kind).retry_call


def next_wait(settings: CallRetrySettings, calls_made: int, exc: BaseException | None) -> float:
    """Seconds to wait before the next call: the service's Retry-After, else capped backoff."""
    if isinstance(exc, ProviderError):
        if exc.kind == INVALID_OUTPUT:
            return 0.0  # a repair request, not a struggling service: ask again at once
        if exc.retry_after is not None:
            return exc.retry_after
    return settings.backoff.delay(calls_made)


def call_with_retries(
    call: Callable[[int], T],
    *,
    settings: CallRetrySettings,
    clock: Clock,
    affordable: Callable[[float], bool],
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """Run `call(n)` for n = 1, 2, ... until it returns or a policy says stop; re-raise the last.

    Stops after `settings.max_calls` calls, on an error whose kind is not retried, when the
    next wait is not `affordable` (the caller's test against the run's deadline), or when
    `give_up()` says further calls are pointless (the service's breaker has just opened).
    """

    def wait(state: RetryCallState) -> float:
        return next_wait(settings, state.attempt_number, _exception(state))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= settings.max_calls or give_up():
            return True
        return not affordable(wait(state))

    counter = iter(range(1, settings.max_calls + 1))

    def sleep(seconds: float) -> None:
        if seconds > 0:  # a repair is asked at once; no zero-length waits on record
            clock.sleep(seconds)

    retrying = Retrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=retry_if_exception(retryable),
        reraise=True,
    )
    return retrying(lambda: call(next(counter)))


def _exception(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None
