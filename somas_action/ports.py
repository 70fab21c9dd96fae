"""The small interfaces the engine's runner talks through; adapters implement them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class AgentProvider(Protocol):
    """Produces an agent's reply (parsed JSON) or raises ProviderError."""

    name: str

    def invoke(self, request: AgentRequest) -> dict[str, Any]:
        """Call the agent and return its JSON reply."""


@dataclass(frozen=True)
class Issue:
    """An issue as the tracker knows it."""

    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    url: str = ""


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
