"""One module per `somas` command group; each has `register(subparsers)`."""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from somas_action.core.domain import Event, State


class Subparsers(Protocol):
    """What `register` functions receive (argparse's private type, named)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one subcommand."""


def change_summary(state: State, events: list[Event], **extra: Any) -> dict[str, Any]:
    """The `--json` shape of every command that records events (documented in operations.md)."""
    return {
        "project_id": state["project_id"],
        "status": state["status"],
        "current_stage": state["current_stage"],
        "events": [
            {
                "seq": e["seq"],
                "event_type": e["event_type"],
                "stage": e["stage"],
                "status": e["status"],
                "actor": e["actor"],
            }
            for e in events
        ],
        **extra,
    }
