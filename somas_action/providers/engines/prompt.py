"""The prompt an engine gets: the stage's instructions, its inputs, and where it stands."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

WORKING_RULES = (
    "You are working in a checkout of the project branch. Change files in place; do not "
    "commit, push or create branches: SOMAS checks and commits your changes. When you are "
    "done, reply with a short summary of what you changed and why."
)


def build_prompt(instructions: str, inputs: Mapping[str, Any], *, earlier_run: str = "") -> str:
    """Instructions, then the inputs as JSON, then the rules (and what an earlier run left)."""
    parts = [instructions.strip(), "## Inputs", json.dumps(inputs, indent=2, sort_keys=True)]
    parts += ["## How to work", WORKING_RULES]
    if earlier_run:
        parts += ["## An earlier run of this stage", earlier_run.strip()]
    return "\n\n".join(parts) + "\n"


def earlier_run_note(reason: str, last_words: str, changed_paths: list[str]) -> str:
    """What the next run is told about a run that stopped at a limit (its work is committed)."""
    changed = ", ".join(changed_paths) if changed_paths else "nothing yet"
    note = (
        f"It stopped before finishing: {reason}. Its changes are already in this checkout "
        f"(files changed: {changed}). Continue from there; do not start over."
    )
    return f"{note}\nIts last message was:\n{last_words.strip()}" if last_words.strip() else note
