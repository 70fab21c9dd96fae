"""The error taxonomy: every failure of an agent call has one kind, and each kind one policy.

The policy answers the questions each retry layer asks, so no layer guesses:
retry the same call? count it against the service's circuit breaker? try the next model of the
agent's fallback chain? give the stage another attempt? park the project instead of failing?
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

# Kinds a provider call can fail with.
TRANSIENT = "transient"  # 5xx, 529 overloaded, connection reset: the service hiccuped
RATE_LIMITED = "rate_limited"  # 429: wait as long as the service says (Retry-After)
QUOTA = "quota"  # 429 insufficient_quota / 402: the account is out of credit
AUTH = "auth"  # 401/403 or a missing key: a person must set the secret
CONFIG = "config"  # our configuration is unusable (no SDK installed, no price for a budget)
TIMEOUT = "timeout"  # no reply within the call's timeout (slow or hanging service)
INVALID_OUTPUT = "invalid_output"  # the reply is not JSON matching the stage's output schema
PERMANENT = "permanent"  # 400/404/422, content refusal: the same request will fail again
CANCELLED = "cancelled"  # the run was cancelled: neither the service's fault nor a result
CIRCUIT_OPEN = "circuit_open"  # a breaker refused the call: zero requests were made
BUDGET = "budget_exhausted"  # the project's token/cost budget would be exceeded
RUN_DEADLINE = "run_deadline"  # the run has no time left for this call or wait: continue later

# Kinds the runner itself records for a stage attempt (not from providers).
QUALITY_GATE = "quality_gate"
WORKSPACE = "workspace"
# The run died during the attempt (recorded by the next run): it counts, so a stage whose
# attempts keep killing their run still stops at max_retries.
ABANDONED = "abandoned"
# A tool loop used `tool_loop.max_turns` without finishing: its work is kept and the project
# parks until a person raises the limit and resumes (the conversation continues).
TURN_LIMIT = "turn_limit"
# A reviewer still requests changes after the stage's `max_retries` rounds: a person decides.
CHANGES_REQUESTED = "changes_requested"


class Policy(NamedTuple):
    """What each retry layer does with an error of one kind."""

    retry_call: bool  # call the same model again within this agent call
    counts_for_breaker: bool  # a failure of the service (opens its breaker)
    fallback: bool  # try the next model of the agent's chain
    retry_stage: bool  # another stage attempt may succeed
    defer: bool  # park the project and continue later instead of failing the attempt


POLICIES: dict[str, Policy] = {
    TRANSIENT: Policy(True, True, True, True, False),
    TIMEOUT: Policy(True, True, True, True, False),
    RATE_LIMITED: Policy(True, True, True, True, False),
    QUOTA: Policy(False, True, True, False, False),
    AUTH: Policy(False, False, True, False, False),
    CONFIG: Policy(False, False, True, False, False),
    INVALID_OUTPUT: Policy(True, False, False, True, False),
    PERMANENT: Policy(False, False, True, False, False),
    CANCELLED: Policy(False, False, False, False, True),
    CIRCUIT_OPEN: Policy(False, False, True, False, True),
    BUDGET: Policy(False, False, False, False, False),
    RUN_DEADLINE: Policy(False, False, False, False, True),
    QUALITY_GATE: Policy(False, False, False, True, False),
    WORKSPACE: Policy(False, False, False, True, False),
    ABANDONED: Policy(False, False, False, True, False),
    TURN_LIMIT: Policy(False, False, False, False, True),
    CHANGES_REQUESTED: Policy(False, False, False, False, False),
}
# An unknown kind (e.g. from an old recording) keeps the engine's historic behaviour: retry.
_UNKNOWN = Policy(False, False, False, True, False)


def policy_for(kind: str) -> Policy:
    """The policy of an error kind."""
    return POLICIES.get(kind, _UNKNOWN)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value replaced, so no message can leak a key."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# -- how long the service asked us to wait --------------------------------------------------------

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _go_duration(value: str) -> float | None:
    """OpenAI's `x-ratelimit-reset-*` style: `1s`, `6m0s`, `12ms`, `1h2m3.5s`."""
    parts = _GO_DURATION.findall(value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _seconds_until(value: str, now: datetime) -> float | None:
    """An absolute time (HTTP date or RFC 3339) as seconds from `now` (never negative)."""
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            # Imported here: only a rate-limited answer carries an HTTP date.
            from email.utils import parsedate_to_datetime

            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
    if moment is None or moment.tzinfo is None:
        return None
    return max((moment - now).total_seconds(), 0.0)


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """The wait a 429/503 response asks for, from the headers providers send.

    `retry-after-ms` and `retry-after` (seconds or HTTP date) are explicit and win; otherwise
    the longest of OpenAI's `x-ratelimit-reset-*` durations and Anthropic's
    `anthropic-ratelimit-*-reset` timestamps, since we cannot tell which limit was hit.
    """
    lower = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lower:
        try:
            return max(float(lower["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    if "retry-after" in lower:
        value = lower["retry-after"].strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            absolute = _seconds_until(value, now)
            if absolute is not None:
                return absolute
    waits: list[float] = []
    for key, value in lower.items():
        if key.startswith("x-ratelimit-reset"):
            parsed = _go_duration(value)
        elif key.startswith("anthropic-ratelimit-") and key.endswith("-reset"):
            parsed = _seconds_until(value, now)
        else:
            continue
        if parsed is not None:
            waits.append(parsed)
    return max(waits) if waits else None
