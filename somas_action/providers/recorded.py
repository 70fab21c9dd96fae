"""Replays agent replies (and errors) recorded as JSON files, one file per stage."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from somas_action.config.resources import recordings_dir
from somas_action.config.schemas import first_problem
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import JsonObject
from somas_action.core.error_kinds import CIRCUIT_OPEN
from somas_action.core.errors import ConfigError, ProviderError
from somas_action.core.names import AI_API
from somas_action.core.ports import AgentRequest, Deferral
from somas_action.core.settings import BreakerSettings, ModelRef
from somas_action.state.breakers import CircuitBreaker
from somas_action.state.jsonio import json_problem

BUILTIN_PREFIX = "builtin:"


def resolve_recording(repo: Path, spec: str) -> Path:
    """`builtin:<name>` or a folder relative to the repository."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        path = recordings_dir() / name
        if not name.replace("-", "").replace("_", "").isalnum() or not path.is_dir():
            available = ", ".join(sorted(p.name for p in recordings_dir().iterdir() if p.is_dir()))
            raise ConfigError(
                f"agent_provider.recording: no built-in recording {name!r}; available: {available}"
            )
        return path
    path = (repo / spec).resolve()
    if not path.is_dir():
        raise ConfigError(f"agent_provider.recording: folder {path} does not exist")
    return path


class RecordedProvider:
    """`<folder>/<stage>.json` holds `responses`; attempt N replays response N (or the last).

    Given the repository, it honours the `ai_api` circuit breaker like a live provider: a
    tripped (or open) breaker means no reply, and the project is parked, not run.
    """

    name = "recorded"

    def __init__(
        self,
        folder: Path,
        repo: Path | None = None,
        clock: Clock | None = None,
        breakers: BreakerSettings | None = None,
    ) -> None:
        self.folder = folder
        self.repo = repo
        self.clock = clock
        self.breakers = breakers
        self.calls: list[AgentRequest] = []

    def unavailable(self, models: tuple[ModelRef, ...]) -> Deferral | None:
        """A Deferral while the `ai_api` breaker refuses calls (tripped by hand, or open)."""
        if self.repo is None or self.breakers is None:
            return None
        blocked, until = CircuitBreaker(
            AI_API, repo=self.repo, clock=self.clock, settings=self.breakers
        ).blocked_until()
        if not blocked:
            return None
        return Deferral(
            reason=f"circuit breaker open for {AI_API}; no call made",
            kind=CIRCUIT_OPEN,
            retry_at=format_ts(until) if until else None,
            services=(AI_API,),
        )

    def issue(self) -> JsonObject:
        """The issue the recording was made for (`issue.json`), if it has one."""
        path = self.folder / "issue.json"
        return self._load(path) if path.exists() else {}

    def invoke(self, request: AgentRequest) -> JsonObject:
        """Replay the recorded reply for this stage and attempt.

        A secondary agent of a stage (e.g. the debugger of validation) replays
        `<stage>.<agent>.json`; `<stage>.json` answers only for the agent it was recorded for.
        """
        self.calls.append(request)
        path = self.folder / f"{request.stage}.{request.agent}.json"
        if not path.exists():
            path = self.folder / f"{request.stage}.json"
        if not path.exists():
            raise ProviderError(
                f"{path}: the recording has no replies for stage {request.stage!r}",
                kind="permanent",
            )
        recording = self._load(path)
        problem = first_problem("recording", recording)
        if problem:
            raise ConfigError(f"{path}: {problem}")
        if recording.get("agent", request.agent) != request.agent:
            raise ProviderError(
                f"{path}: recorded for agent {recording['agent']!r}; no replies for agent "
                f"{request.agent!r} (add {request.stage}.{request.agent}.json)",
                kind="permanent",
            )
        responses = recording["responses"]
        response = responses[min(request.attempt, len(responses)) - 1]
        if "error" in response:
            error = response["error"]
            raise ProviderError(error["message"], kind=error["kind"])
        return copy.deepcopy(response["output"])

    @staticmethod
    def _load(path: Path) -> JsonObject:
        try:
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({json_problem(exc)})") from None
