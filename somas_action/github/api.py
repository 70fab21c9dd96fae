"""The one door to GitHub's REST API: settings, the PyGithub client, and `GitHubApi.call`.

Every request SOMAS makes goes through `GitHubApi.call`, which

- spaces write requests (GitHub's advice against secondary rate limits) on the injected clock;
- honours 403/429 rate limits (`Retry-After`, `x-ratelimit-reset`): a wait the run can afford
  is sat out, a longer one raises `RateLimitDeferred` so the caller checkpoints and dispatches a
  continuation instead of sleeping;
- retries 5xx and connection errors only where repeating is harmless, and reports an
  `AmbiguousWrite` otherwise, so the caller can look before it re-sends (a comment POST);
- runs each attempt through `guard`, the seam where the `github_api` circuit breaker plugs in.

PyGithub's own retry is switched off (it would re-send POSTs and sleep for real).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException

from somas_action.core.clock import Clock
from somas_action.core.errors import ConfigError, SomasError
from somas_action.core.settings import GitHubConfig

T = TypeVar("T")
Guard = Callable[[str, Callable[[], Any]], Any]
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
# A secondary limit without Retry-After: GitHub says wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
_RATE_LIMIT_RETRIES = 3
# Methods whose repetition cannot create a second object.
_REPEATABLE = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


class GitHubError(SomasError):
    """A GitHub request failed for good; the message names the request and the status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AmbiguousWrite(GitHubError):
    """A non-repeatable write failed in a way that leaves unknown whether it took effect."""


class RateLimitDeferred(GitHubError):
    """GitHub asks for a wait longer than this run can afford."""

    def __init__(self, message: str, wait_seconds: float) -> None:
        super().__init__(message, status=429)
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class GitHubSettings:
    """Where and as whom to reach GitHub, and how patiently."""

    token: str
    repository: str
    # The config's `github` section: pacing, retries, rate-limit patience, bot logins.
    config: GitHubConfig
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    run_id: str | None = None
    timeout_seconds: int = 30

    @property
    def owner(self) -> str:
        """The repository's owner login."""
        return self.repository.split("/", 1)[0]

    @property
    def run_url(self) -> str | None:
        """This workflow run's page, linked from failure comments (None outside Actions)."""
        if not self.run_id:
            return None
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], github_config: GitHubConfig) -> GitHubSettings:
        """Settings from the Actions environment and the config's `github` section."""
        token = env.get("SOMAS_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or ""
        if not token:
            raise ConfigError(
                "GITHUB_TOKEN: not set; pass the workflow token (env: GITHUB_TOKEN: "
                "${{ secrets.GITHUB_TOKEN }}) or set SOMAS_GITHUB_TOKEN"
            )
        repository = env.get("GITHUB_REPOSITORY", "")
        parts = repository.split("/")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(
                f"GITHUB_REPOSITORY: {repository!r} is not owner/name; run inside GitHub Actions "
                "or set it, e.g. GITHUB_REPOSITORY=octo-org/octo-repo"
            )
        api_url = github_config.api_url or env.get("GITHUB_API_URL") or DEFAULT_API_URL
        return cls(
            token=token,
            repository=repository,
            api_url=api_url.rstrip("/"),
            server_url=env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL,
            run_id=env.get("GITHUB_RUN_ID") or None,
            config=github_config,
        )


def rate_limit_wait(
    status: int, headers: Mapping[str, Any], message: str, now: float
) -> float | None:
    """Seconds GitHub asks us to wait, or None when a 403/429 is not a rate limit."""
    if status not in (403, 429):
        return None
    lower = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if "retry-after" in lower:
        try:
            return max(float(lower["retry-after"]), 0.0)
        except ValueError:
            return SECONDARY_LIMIT_WAIT
    if lower.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lower:
        try:
            return max(float(lower["x-ratelimit-reset"]) - now, 0.0) + 1.0
        except ValueError:
            return SECONDARY_LIMIT_WAIT
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_LIMIT_WAIT
    return None  # a plain 403: a permission problem, not a limit


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("message") or exc.message or "")


class GitHubApi:
    """A PyGithub client for one repository, reached only through `call`."""

    def __init__(self, settings: GitHubSettings, clock: Clock, guard: Guard | None = None) -> None:
        self.settings = settings
        self.clock = clock
        # The circuit breaker's seam: guard(service, attempt) runs one HTTP attempt.
        self.guard: Guard = guard or (lambda service, attempt: attempt())
        self.gh = Github(
            auth=Auth.Token(settings.token),
            base_url=settings.api_url,
            timeout=settings.timeout_seconds,
            per_page=100,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self.repo = self.gh.get_repo(settings.repository)
        self._last_write: float | None = None
        self.waited: list[float] = []

    @property
    def repo_url(self) -> str:
        """The repository's API URL (what PyGithub's objects build on)."""
        return f"{self.settings.api_url}/repos/{self.settings.repository}"

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """A raw JSON request relative to the repository URL (for what PyGithub wraps badly)."""
        url = f"{self.repo_url}{path}"
        _, data = self.gh.requester.requestJsonAndCheck(
            method, url, parameters=params or None, input=body
        )
        return data

    def send(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        repeatable: bool | None = None,
        **params: Any,
    ) -> Any:
        """`call` of one raw request relative to the repository URL."""
        return self.call(
            what, method, lambda: self.request(method, path, body, **params), repeatable=repeatable
        )

    def graphql(
        self, what: str, query: str, variables: Mapping[str, Any], *, repeatable: bool
    ) -> Any:
        """`call` of one GraphQL request (a POST, spaced like every write); its `data`.

        GraphQL errors come back as a `GitHubError` (404 for GitHub's NOT_FOUND).
        """
        _, answer = self.call(
            what,
            "POST",
            lambda: self.gh.requester.graphql_query(query, dict(variables)),
            repeatable=repeatable,
        )
        return answer["data"]

    def call(
        self, what: str, method: str, attempt: Callable[[], T], *, repeatable: bool | None = None
    ) -> T:
        """Run one GitHub request with throttling, rate-limit handling and bounded retries.

        `what` names the request in errors; `repeatable` overrides the method's default (a POST
        that adds labels or a reaction is harmless to repeat, a comment POST is not).
        """
        method = method.upper()
        may_repeat = method in _REPEATABLE if repeatable is None else repeatable
        limited = failures = 0
        while True:
            if method != "GET":
                self._space_writes()
            try:
                result: T = self.guard("github_api", attempt)
                return result
            except GithubException as exc:
                message = _message(exc)
                wait = rate_limit_wait(exc.status, exc.headers or {}, message, self._epoch())
                if wait is not None:
                    limited += 1
                    self._sit_out(what, wait, limited)
                    continue  # a limited request was not processed: re-sending is safe
                if exc.status >= 500:
                    failures += 1
                    if not may_repeat:
                        raise AmbiguousWrite(
                            f"GitHub {what}: HTTP {exc.status} ({message or 'server error'}); "
                            "it may or may not have taken effect",
                            exc.status,
                        ) from None
                    if failures <= self.settings.config.max_retries:
                        self.clock.sleep(self.settings.config.retry_backoff.delay(failures))
                        continue
                raise GitHubError(
                    f"GitHub {what}: HTTP {exc.status}: {message or 'request failed'}", exc.status
                ) from None
            except requests.RequestException as exc:
                failures += 1
                if not may_repeat:
                    raise AmbiguousWrite(
                        f"GitHub {what}: {type(exc).__name__}; it may or may not have taken effect"
                    ) from None
                if failures <= self.settings.config.max_retries:
                    self.clock.sleep(self.settings.config.retry_backoff.delay(failures))
                    continue
                raise GitHubError(f"GitHub {what}: {type(exc).__name__}: {exc}") from None

    def _epoch(self) -> float:
        return self.clock.now().timestamp()

    def _space_writes(self) -> None:
        gap = self.settings.config.min_seconds_between_writes
        now = self.clock.monotonic()
        if gap and self._last_write is not None and now - self._last_write < gap:
            self.clock.sleep(gap - (now - self._last_write))
            now = self.clock.monotonic()
        self._last_write = now

    def _sit_out(self, what: str, wait: float, times: int) -> None:
        budget = self.settings.config.max_rate_limit_wait_seconds - sum(self.waited)
        if wait > budget or times > _RATE_LIMIT_RETRIES:
            raise RateLimitDeferred(
                f"GitHub {what}: rate limited; GitHub asks for {wait:.0f}s, more than this run "
                f"affords (github.max_rate_limit_wait_seconds: "
                f"{self.settings.config.max_rate_limit_wait_seconds:.0f})",
                wait,
            )
        self.waited.append(wait)
        self.clock.sleep(wait)
