"""The repository tools an agent may call: their specs (from one schema file) and sets by role.

`schemas/tools.schema.json` is the one source of every tool's description and argument
schema; both SDK adapters send what `tool_specs` builds from it. `finish` is completed per
stage with the fields of the stage's own output (its artifacts too; everything but the files,
which come from the worktree).
"""

from __future__ import annotations

import copy
from typing import Any

from somas_action.config.schemas import load_schema
from somas_action.core.conversation import ToolSpec

READ_TOOLS: tuple[str, ...] = ("list_files", "read_file", "search", "finish")
EDIT_TOOLS: tuple[str, ...] = (
    "list_files",
    "read_file",
    "search",
    "replace_in_file",
    "create_file",
    "delete_file",
    "run_tests",
    "finish",
)
TOOLSETS: dict[str, tuple[str, ...]] = {"none": (), "read": READ_TOOLS, "edit": EDIT_TOOLS}
# Stages not named here (validation, release) get no tools: they work from the repository map.
STAGE_TOOLSETS = {
    "intake": "read",
    "specification": "read",
    "architecture": "read",
    "review": "read",
    "implementation": "edit",
}
AGENT_TOOLSETS = {"implementer": "edit", "debugger": "edit"}
# Output fields that never travel through `finish`: files come from the worktree's changes.
_NOT_FINISH_FIELDS = ("files", "deleted")


def toolset_for(stage: str, agent: str) -> str:
    """The default tool set of an agent working on a stage (`edit`, `read` or `none`)."""
    return AGENT_TOOLSETS.get(agent) or STAGE_TOOLSETS.get(stage, "none")


def tool_specs(
    names: tuple[str, ...], stage_output: dict[str, Any] | None = None, edits: bool = False
) -> list[ToolSpec]:
    """Specs of the tools `names`, with `finish` taking `stage_output`'s fields.

    `stage_output` is the stage's flattened output schema (`structured.flatten`); with
    `edits`, `finish` also requires a commit message.
    """
    definitions = load_schema("tools")["$defs"]
    specs = []
    for name in names:
        parameters = copy.deepcopy(definitions[name])
        description = parameters.pop("description")
        if name == "finish":
            parameters = finish_parameters(parameters, stage_output or {}, edits)
        specs.append(ToolSpec(name, description, parameters))
    return specs


def finish_parameters(
    base: dict[str, Any], stage_output: dict[str, Any], edits: bool
) -> dict[str, Any]:
    """`finish`'s argument schema: summary, commit message, and the stage's own fields."""
    parameters = copy.deepcopy(base)
    properties = parameters["properties"]
    required = list(parameters.get("required", []))
    for name, schema in stage_output.get("properties", {}).items():
        if name not in _NOT_FINISH_FIELDS:
            properties.setdefault(name, copy.deepcopy(schema))
    for name in stage_output.get("required", []):
        if name not in _NOT_FINISH_FIELDS and name not in required:
            required.append(name)
    if edits and "commit_message" not in required:
        required.append("commit_message")
    parameters["required"] = required
    return parameters
