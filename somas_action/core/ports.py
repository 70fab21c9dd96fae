"""The small interfaces the engine's runner talks through; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from somas_action.core.access import Access


@dataclass(frozen=True)
class Observation:
    """Something a provider saw during a call that belongs in the project's log."""

    event_type: str
    status: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CallOptions:
    """How a live provider may spend: fallback models, limits, budget, deadline, reporting."""

    fallback: tuple[dict[str, Any], ...] = ()
    temperature: float | None = None
    max_output_tokens: int | None = None
    # {"max_cost_usd", "max_tokens", "spent_cost_usd", "spent_tokens"}; None = no budget.
    budget: dict[str, Any] | None = None
    # A `Clock.monotonic()` reading after which no wait or call may start (the run's end).
    deadline: float | None = None
    observe: Callable[[Observation], None] | None = None


@dataclass(frozen=True)
class AgentRequest:
    """One agent call: which agent, for which stage and attempt, with what inputs."""

    project_id: str
    stage: str
    agent: str
    attempt: int
    instructions: str
    inputs: dict[str, Any]
    model: dict[str, Any] | None = None
    output_schema: dict[str, Any] = field(default_factory=dict)
    options: CallOptions = field(default_factory=CallOptions)


class AgentProvider(Protocol):
    """Produces an agent's reply (parsed JSON) or raises ProviderError."""

    name: str

    def invoke(self, request: AgentRequest) -> dict[str, Any]:
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

    def unavailable(self, models: list[dict[str, Any]]) -> Deferral | None:
        """A Deferral if every model in `models` (a fallback chain) is refused right now."""


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
