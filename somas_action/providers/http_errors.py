"""Classify an AI provider's HTTP failure into the taxonomy (shared by both SDK adapters)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from somas_action.core.error_kinds import (
    AUTH,
    CONFIG,
    PERMANENT,
    QUOTA,
    RATE_LIMITED,
    TIMEOUT,
    TRANSIENT,
    redact,
    retry_after_seconds,
)
from somas_action.core.errors import ProviderError

# Where each provider's key comes from; the only place a key is ever read.
KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "github-models": "GITHUB_TOKEN",
}


def provider_key(provider: str, model: str) -> str:
    """The API key of `provider` from its environment variable (the only place one is read)."""
    if provider not in KEY_ENV:
        raise ProviderError(
            f"model {provider}/{model}: provider {provider!r} cannot be called live; "
            f"use one of {', '.join(KEY_ENV)} (or agent_provider.type: recorded)",
            kind=CONFIG,
            service=provider,
        )
    key = os.environ.get(KEY_ENV[provider], "")
    if not key:
        raise ProviderError(
            f"{provider}/{model}: no API key: {key_help(provider)}",
            kind=AUTH,
            service=provider,
        )
    return key


def key_help(provider: str) -> str:
    """How to give SOMAS the key of `provider`."""
    env = KEY_ENV[provider]
    if provider == "github-models":
        return (
            f"set {env} (in a workflow: `env: {env}: ${{{{ secrets.GITHUB_TOKEN }}}}` "
            "with `permissions: models: read`)"
        )
    return f"set {env} (in a workflow: `env: {env}: ${{{{ secrets.{env} }}}}` from a secret)"


def _error_fields(body: Any) -> tuple[str, str, str]:
    """(type, code, message) from OpenAI's `{"error": {...}}` or Anthropic's error shape."""
    inner = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(inner, dict):
        return "", "", str(inner)
    return (
        str(inner.get("type") or ""),
        str(inner.get("code") or ""),
        str(inner.get("message") or ""),
    )


def classify_status(
    provider: str,
    model: str,
    status: int,
    body: Any,
    headers: Mapping[str, str],
    now: datetime,
    secrets: list[str],
) -> ProviderError:
    """The ProviderError for an HTTP error response (the key is never echoed)."""
    kind_name, code, message = _error_fields(body)
    label = f"{provider}/{model}"
    detail = redact(f"HTTP {status} {code or kind_name}: {message}"[:300], secrets)
    if status in (401, 403):
        # The service's own message may quote part of the key; say what to do instead.
        return ProviderError(
            f"{label}: {KEY_ENV[provider]} was refused (HTTP {status}); {key_help(provider)}",
            kind=AUTH,
            service=provider,
            status=status,
        )
    lowered = f"{kind_name} {code} {message}".lower()
    if status == 402 or "insufficient_quota" in lowered or "credit balance" in lowered:
        return ProviderError(
            f"{label}: account quota exhausted ({detail}); add credit or use another provider",
            kind=QUOTA,
            service=provider,
            status=status,
        )
    if status == 429:
        wait = retry_after_seconds(headers, now)
        return ProviderError(
            f"{label}: rate limited ({detail})",
            kind=RATE_LIMITED,
            service=provider,
            status=status,
            retry_after=wait,
        )
    if status == 408:
        return ProviderError(f"{label}: {detail}", kind=TIMEOUT, service=provider, status=status)
    if status >= 500 or status == 409:
        wait = retry_after_seconds(headers, now)  # 503 may say when to come back
        return ProviderError(
            f"{label}: service error ({detail})",
            kind=TRANSIENT,
            service=provider,
            status=status,
            retry_after=wait,
        )
    hint = "; check the model name in the agent file" if status == 404 else ""
    return ProviderError(
        f"{label}: request refused ({detail}){hint}",
        kind=PERMANENT,
        service=provider,
        status=status,
    )


def timeout_error(provider: str, model: str, seconds: float) -> ProviderError:
    """No reply in time (slow or hanging service)."""
    return ProviderError(
        f"{provider}/{model}: no reply within {seconds:g}s "
        f"(agent_provider.providers.{provider}.timeout_seconds)",
        kind=TIMEOUT,
        service=provider,
    )


def connection_error(provider: str, model: str, cause: BaseException) -> ProviderError:
    """The service could not be reached."""
    return ProviderError(
        f"{provider}/{model}: connection failed ({type(cause).__name__})",
        kind=TRANSIENT,
        service=provider,
    )


@contextmanager
def sdk_errors(
    sdk: Any,
    provider: str,
    model: str,
    timeout: float,
    now: Callable[[], datetime],
    secrets: list[str],
) -> Iterator[None]:
    """Turn an official SDK's exceptions (openai and anthropic name them alike) into ours."""
    try:
        yield
    except sdk.APITimeoutError:
        raise timeout_error(provider, model, timeout) from None
    except sdk.APIConnectionError as exc:
        raise connection_error(provider, model, exc) from None
    except sdk.APIStatusError as exc:
        raise classify_status(
            provider, model, exc.status_code, exc.body, exc.response.headers, now(), secrets
        ) from None
    except sdk.APIError as exc:
        # A response the SDK could not read (e.g. a proxy's HTML page): the service hiccuped.
        raise ProviderError(
            f"{provider}/{model}: unreadable response ({type(exc).__name__})",
            kind=TRANSIENT,
            service=provider,
        ) from None
