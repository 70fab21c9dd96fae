"""The `github_api` circuit breaker around every GitHub request (GitHubApi's `guard` seam).

What counts against GitHub: 5xx answers, rate limits (429, or a 403 that is one) and
connection errors. A 4xx that is our fault (404, 422, a permission 403) is a verdict on the
request, not on the service, and only frees a half-open probe.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from github import GithubException

from somas_action.core import names
from somas_action.core.clock import Clock
from somas_action.core.settings import Config
from somas_action.github.api import Guard, rate_limit_wait
from somas_action.state.breakers import CircuitBreaker

GITHUB_API = names.GITHUB_API


def github_guard(repo: Path, config: Config, clock: Clock, actor: str | None = None) -> Guard:
    """A guard that runs each GitHub request through the shared `github_api` breaker."""
    breaker = CircuitBreaker(
        GITHUB_API,
        repo=repo,
        clock=clock,
        settings=config.error_handling.circuit_breaker,
        actor=actor,
    )

    def guard(service: str, attempt: Callable[[], Any]) -> Any:
        breaker.acquire()  # an open breaker refuses here, before any request is sent
        try:
            result = attempt()
        except GithubException as exc:
            message = str(exc.data) if exc.data else ""
            limited = rate_limit_wait(
                exc.status, exc.headers or {}, message, clock.now().timestamp()
            )
            if exc.status >= 500 or limited is not None:
                breaker.record_failure(f"http_{exc.status}", message or f"HTTP {exc.status}")
            else:
                breaker.release()
            raise
        except requests.RequestException as exc:
            breaker.record_failure("connection", f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            breaker.release()  # cancelled or our own bug: no verdict on GitHub
            raise
        breaker.record_success()
        return result

    return guard
