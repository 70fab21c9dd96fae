"""Which output schema an agent's reply must match: the stage's own, else the generic one.

The debugger answers for the validation stage but in the implementation's format (files).
"""

from __future__ import annotations

from somas_action.config.resources import schemas_dir

DEBUGGER = "debugger"
DEBUGGER_OUTPUT = "agent-output/implementation"


def output_schema_name(stage: str, agent: str | None = None) -> str:
    """`agent-output/<stage>` when that schema exists, else `agent-output/generic`."""
    if agent == DEBUGGER:
        return DEBUGGER_OUTPUT
    specific = f"agent-output/{stage}"
    if (schemas_dir() / f"{specific}.schema.json").exists():
        return specific
    return "agent-output/generic"
