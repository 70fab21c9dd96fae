"""Every `somas:*` label name, and the labels an issue should carry for a project state."""

from __future__ import annotations

from typing import Any

from somas_action import names

PROJECT = names.PROJECT_LABEL
IN_PROGRESS = "somas:in-progress"
AWAITING_APPROVAL = "somas:awaiting-approval"
FAILED = "somas:failed"
COMPLETED = "somas:completed"
PAUSED = "somas:paused"
CANCELLED = "somas:cancelled"
PARKED = "somas:parked"
STAGE_PREFIX = "somas:stage:"

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


def labels_for(state: dict[str, Any]) -> set[str]:
    """The somas labels an issue should have: project, status, and current stage."""
    wanted = {PROJECT, _STATUS_LABELS[state["status"]]}
    if state["status"] != names.COMPLETED:
        wanted.add(f"{STAGE_PREFIX}{state['current_stage']}")
    return wanted


def label_changes(current: set[str], state: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(to add, to remove) so that the issue's somas labels match the state; others untouched."""
    wanted = labels_for(state)
    ours = {label for label in current if label.startswith(names.LABEL_PREFIX)}
    return wanted - current, ours - wanted
