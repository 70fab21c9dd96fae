"""Every `somas:*` label name, and the labels an issue should carry for a project state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from somas_action.core import names
from somas_action.core.domain import State

PROJECT = names.PROJECT_LABEL
# What the issue form applies: a request that starts nothing until someone with an allowed role
# labels the issue somas:project or comments `/somas start` (the mirror drops it then).
REQUESTED = "somas:requested"
IN_PROGRESS = "somas:in-progress"
AWAITING_APPROVAL = "somas:awaiting-approval"
FAILED = "somas:failed"
COMPLETED = "somas:completed"
PAUSED = "somas:paused"
CANCELLED = "somas:cancelled"
PARKED = "somas:parked"
STAGE_PREFIX = "somas:stage:"
CIRCUIT_OPEN = "somas:circuit-open"
ALERT = "somas:alert"  # the monitor's one alert issue, never a project's

_STATUS_LABELS = {
    names.PENDING: IN_PROGRESS,
    names.IN_PROGRESS: IN_PROGRESS,
    names.WAITING: AWAITING_APPROVAL,
    names.FAILED: FAILED,
    names.COMPLETED: COMPLETED,
    names.PAUSED: PAUSED,
    names.CANCELLED: CANCELLED,
    names.PARKED: PARKED,
}


# Statuses at which a project stands still at its current stage, so the stage label is true until
# a person or a later run moves it. While a run works, stages change faster than labels should
# be written (the status comment follows them); once completed, no stage is current.
_AT_A_STAGE = frozenset({names.WAITING, names.FAILED, names.PAUSED, names.CANCELLED, names.PARKED})


def labels_for(state: State) -> set[str]:
    """The somas labels an issue should have: project, status, and the stage it stands at."""
    wanted = {PROJECT, _STATUS_LABELS[state["status"]]}
    if state["status"] in _AT_A_STAGE:
        wanted.add(f"{STAGE_PREFIX}{state['current_stage']}")
    if breaker_open(state):
        wanted.add(CIRCUIT_OPEN)
    return wanted


def label_changes(current: set[str], state: State) -> tuple[set[str], set[str]]:
    """(to add, to remove) so that the issue's somas labels match the state; others untouched."""
    wanted = labels_for(state)
    ours = {label for label in current if label.startswith(names.LABEL_PREFIX)}
    return wanted - current, ours - wanted


# -- the taxonomy `somas setup-labels` creates ---------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """A label as it should exist in the repository: name, colour (hex, no #), description."""

    name: str
    color: str
    description: str


_FIXED_SPECS = (
    LabelSpec(PROJECT, "5319e7", "Run this issue through the SOMAS pipeline"),
    LabelSpec(REQUESTED, "d4c5f9", "Asks a maintainer to start SOMAS: label somas:project"),
    LabelSpec(IN_PROGRESS, "fbca04", "SOMAS is working on this project"),
    LabelSpec(AWAITING_APPROVAL, "0e8a16", "SOMAS waits at a human gate: /somas approve or reject"),
    LabelSpec(FAILED, "d73a4a", "SOMAS failed; see the status comment and dead letters"),
    LabelSpec(COMPLETED, "0075ca", "SOMAS completed the pipeline"),
    LabelSpec(PAUSED, "c5def5", "SOMAS project paused: /somas unpause to continue"),
    LabelSpec(CANCELLED, "6a737d", "SOMAS project cancelled"),
    LabelSpec(PARKED, "f9d0c4", "SOMAS project parked until a service recovers: /somas resume"),
    LabelSpec(CIRCUIT_OPEN, "b60205", "An external service breaker is open; calls fail fast"),
    LabelSpec(ALERT, "b60205", "SOMAS monitor: thresholds crossed (one issue, kept up to date)"),
)
_STAGE_COLOR = "bfd4f2"


def label_specs(stage_names: Iterable[str]) -> list[LabelSpec]:
    """Every label SOMAS may put on an issue, for a pipeline with these stages."""
    stages = [
        LabelSpec(f"{STAGE_PREFIX}{stage}", _STAGE_COLOR, f"SOMAS project is at the {stage} stage")
        for stage in stage_names
    ]
    return [*_FIXED_SPECS, *stages]


def breaker_open(state: State) -> bool:
    """Whether any circuit breaker mirrored into the state is open."""
    return any(b["state"] == names.BREAKER_OPEN for b in state["circuit_breakers"].values())
