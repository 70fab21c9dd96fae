"""The small interfaces the engine's runner talks through; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from somas_action.core.access import Access
from somas_action.core.budget import Budget
from somas_action.core.domain import JsonObject
from somas_action.core.events import EventType
from somas_action.core.settings import ModelRef
from somas_action.core.toolloop import ModelPort


@dataclass(frozen=True)
class Observation:
    """Something a provider saw during a call that belongs in the project's log."""

    event_type: EventType
    status: str
    data: JsonObject


@dataclass(frozen=True)
class CallOptions:
    """How a live provider may spend: fallback models, limits, budget, deadline, reporting."""

    fallback: tuple[ModelRef, ...]
    temperature: float
    max_output_tokens: int
    # The project's limits and what it has spent so far; None = no budget.
    budget: Budget | None
    # A `Clock.monotonic()` reading after which no wait or call may start (the run's end).
    deadline: float | None
    observe: Callable[[Observation], None]


@dataclass(frozen=True)
class AgentRequest:
    """One agent call: which agent, for which stage and attempt, with what inputs."""

    project_id: str
    stage: str
    agent: str
    attempt: int
    instructions: str
    inputs: JsonObject
    model: ModelRef | None
    output_schema: JsonObject
    options: CallOptions


class AgentProvider(Protocol):
    """Produces an agent's reply (parsed JSON) or raises ProviderError."""

    name: str

    def invoke(self, request: AgentRequest) -> JsonObject:
        """Call the agent and return its JSON reply."""


@dataclass(frozen=True)
class Deferral:
    """Why work cannot run now and when to try again (`retry_at` None: when a person acts)."""

    reason: str
    kind: str
    retry_at: str | None
    services: tuple[str, ...] = ()


@runtime_checkable
class SupportsAvailability(Protocol):
    """A provider that can tell, without calling anything, that no model can be called now."""

    def unavailable(self, models: tuple[ModelRef, ...]) -> Deferral | None:
        """A Deferral if every model in `models` (a fallback chain) is refused right now."""


@runtime_checkable
class SupportsToolLoop(Protocol):
    """A provider that can drive a tool loop (docs/agents.md) as well as structured replies."""

    def tool_model(self, request: AgentRequest) -> ModelPort | None:
        """The model that answers this request's tool-loop turns; None: structured replies only.

        Observations of its calls (failures, fallbacks, breaker changes) go to
        `request.options.observe`; token usage is recorded by the loop itself, per turn.
        """


@dataclass(frozen=True)
class Issue:
    """An issue as the tracker knows it."""

    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    url: str = ""
    state: str = "open"  # GitHub's `open` or `closed`; closed issues never start a project


class Tracker(Protocol):
    """Issues, labels, comments and pull requests (GitHub, or local files)."""

    def get_issue(self, number: int) -> Issue:
        """The issue `number`, or a SomasError if there is none."""

    def set_labels(self, number: int, add: set[str], remove: set[str]) -> None:
        """Add and remove labels on an issue."""

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        """Create the comment carrying `marker`, or edit it in place if it exists."""

    def upsert_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        """Open (or update) the pull request for branch `head`; return its reference."""

    def close_pull_request(self, head: str, reason: str) -> str | None:
        """Close the open pull request of branch `head`, saying why on it; None if there is none."""

    def cancel_in_progress_runs(self) -> list[str]:
        """Cancel the tracker's running pipeline runs, where it has any; return their ids."""

    def upsert_alert(self, title: str, body: str | None) -> str | None:
        """Keep one open alert issue (`somas:alert`): create or update it, close it on None."""


# -- what the GitHub triggers need beyond the Tracker (the local tracker has no such things) --


@dataclass(frozen=True)
class WorkflowRun:
    """A workflow run as the forge lists it."""

    id: int
    name: str
    status: str
    html_url: str = ""


class CommandHost(Protocol):
    """Who may command SOMAS, and how a command comment is acknowledged."""

    def access(self, login: str) -> Access:
        """The account's role (`role_name`) and base permission on the repository."""

    def react(self, comment_id: int, content: str) -> None:
        """Put a reaction (`eyes`, `rocket`, `confused`, …) on an issue comment."""

    def reply(self, number: int, marker: str, body: str) -> None:
        """Answer on the issue once per `marker` (a retried reply never duplicates)."""


class WorkflowRuns(Protocol):
    """Workflow runs: list, cancel, and dispatch a continuation."""

    def list_runs(self, status: str) -> list[WorkflowRun]:
        """Runs with this status (`in_progress`, `queued`, …)."""

    def cancel_run(self, run_id: int) -> bool:
        """Ask the forge to cancel a run; False if it had already finished."""

    def dispatch(self, workflow: str, ref: str, inputs: dict[str, str]) -> None:
        """Start `workflow` on `ref` with string inputs."""
