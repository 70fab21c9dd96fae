"""Replays agent replies (and errors) recorded as JSON files, one file per stage.

A stage whose agent works with tools replays a recorded conversation instead
(`<stage>.conversation.json` or `<stage>.<agent>.conversation.json`, the format of
`schemas/conversation.schema.json`): the model's turns come from the recording, the tools run
for real, and every tool result is checked against the recorded one, so a recording that no
longer fits the repository stops at the first difference instead of going on blindly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

from somas_action.config.resources import recordings_dir
from somas_action.config.schemas import first_problem
from somas_action.core.clock import Clock, format_ts
from somas_action.core.conversation import (
    AssistantTurn,
    ModelTurn,
    Record,
    ToolCallRecord,
    ToolResults,
    ToolSpec,
    Transcript,
    TurnRecord,
    digest,
    mask_timings,
)
from somas_action.core.domain import JsonObject
from somas_action.core.error_kinds import CIRCUIT_OPEN, PERMANENT
from somas_action.core.errors import ConfigError, ProviderError
from somas_action.core.names import AI_API
from somas_action.core.ports import AgentRequest, Deferral
from somas_action.core.settings import BreakerSettings, ModelRef
from somas_action.core.toolloop import ModelPort
from somas_action.state.breakers import CircuitBreaker
from somas_action.state.jsonio import json_problem
from somas_action.state.tool_replay import first_difference, read_recording

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

    def tool_model(self, request: AgentRequest) -> ModelPort | None:
        """The recorded conversation of this stage's agent, if the recording has one."""
        for name in (f"{request.stage}.{request.agent}", request.stage):
            path = self.folder / f"{name}.conversation.json"
            if path.exists():
                records = read_recording(path)
                start = records[0]
                if getattr(start, "agent", None) == request.agent:
                    self.calls.append(request)
                    return RecordedToolModel(path, records)
        return None

    @staticmethod
    def _load(path: Path) -> JsonObject:
        try:
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({json_problem(exc)})") from None


class RecordedToolModel:
    """A ModelPort that answers with a recording's turns, in order.

    Before each turn it compares the tool results it is sent with the recorded ones (durations
    masked, as `somas replay` does); a difference is a permanent error naming the call.
    """

    provider = "recorded"

    def __init__(self, path: Path, records: Sequence[Record]) -> None:
        self.path = path
        self.turns = [r for r in records if isinstance(r, TurnRecord)]
        self.results = {r.call_id: r for r in records if isinstance(r, ToolCallRecord)}
        self.model = self.turns[0].model if self.turns else "recording"

    def turn(self, transcript: Transcript, tools: Sequence[ToolSpec], max_tokens: int) -> ModelTurn:
        """The recorded turn that follows the transcript."""
        self._check(transcript)
        number = sum(isinstance(m, AssistantTurn) for m in transcript.messages) + 1
        if number > len(self.turns):
            raise ProviderError(
                f"{self.path}: the recording has {len(self.turns)} turns and ends without "
                f"`finish`; turn {number} was asked for",
                kind=PERMANENT,
            )
        recorded = self.turns[number - 1]
        return ModelTurn(
            text=recorded.text,
            tool_calls=recorded.tool_calls,
            stop_reason=recorded.stop_reason,
            input_tokens=recorded.input_tokens,
            output_tokens=recorded.output_tokens,
            chars_sent=transcript.chars(),
        )

    def _check(self, transcript: Transcript) -> None:
        for message in transcript.messages:
            if not isinstance(message, ToolResults):
                continue
            for result in message.results:
                recorded = self.results.get(result.call_id)
                if recorded is None:
                    continue
                if digest(mask_timings(result.content)) != recorded.replay_sha256:
                    detail = first_difference(
                        mask_timings(recorded.output), mask_timings(result.content)
                    )
                    raise ProviderError(
                        f"{self.path}: turn {recorded.turn}, {recorded.name} "
                        f"({recorded.call_id}) answered differently than when the recording "
                        f"was made: {detail}; record it again for this repository",
                        kind=PERMANENT,
                    )
