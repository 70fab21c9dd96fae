"""`somas replay`: re-run a project's recorded tool conversations with no model and no key.

Each conversation in the project's log is rebuilt from its events (tool outputs from their
artifacts) and replayed on a worktree of its base commit (`state.tool_replay`): every tool
call runs again, edits and `run_tests` included, and its result (durations masked), error flag
and the files after it must match the record. The report names the first divergence.
"""

from __future__ import annotations

from dataclasses import dataclass

from somas_action.config.schemas import load_schema
from somas_action.config.tool_specs import tool_specs
from somas_action.core import tool_events
from somas_action.core.conversation import ConversationStarted
from somas_action.core.domain import Event
from somas_action.core.errors import CommandRefused, StateError
from somas_action.core.settings import Config
from somas_action.pipeline.agent_schemas import output_schema_name
from somas_action.pipeline.tests_tool import tests_runner
from somas_action.pipeline.tool_stage import tool_output_reader
from somas_action.providers.structured import flatten
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools, ToolSettings
from somas_action.state.scratch import ScratchTree
from somas_action.state.store import ProjectStore
from somas_action.state.tool_replay import ReplayReport, replay


@dataclass(frozen=True)
class ConversationReplay:
    """One conversation's replay."""

    conversation: str
    stage: str
    agent: str
    finished: bool
    report: ReplayReport

    def describe(self) -> str:
        """One line: what was re-run and whether it matched."""
        report = self.report
        what = (
            f"{self.conversation} ({self.stage}, {self.agent}): {report.turns} turns, "
            f"{report.tool_calls} tool calls re-run"
        )
        if report.divergence is None:
            ending = "" if self.finished else " (the conversation is unfinished)"
            return f"{what}, identical{ending}"
        return f"{what}; first divergence at {report.divergence.describe()}"


def replay_project(
    store: ProjectStore,
    workspace: GitWorkspace,
    config: Config,
    *,
    base_branch: str,
    stage: str | None = None,
) -> list[ConversationReplay]:
    """Replay every conversation of the project (of one stage), in order."""
    events = store.read_events()
    found = tool_events.conversations(events, stage)
    if not found:
        where = f" at stage {stage}" if stage else ""
        raise CommandRefused(
            f"{store.project_id}: no recorded tool conversation{where}; agents without tools "
            "make none (docs/agents.md)"
        )
    return [
        _replay_one(store, workspace, config, base_branch, events, conversation)
        for conversation in found
    ]


def _replay_one(
    store: ProjectStore,
    workspace: GitWorkspace,
    config: Config,
    base_branch: str,
    events: list[Event],
    conversation: str,
) -> ConversationReplay:
    mine = tool_events.conversation_events(events, conversation)
    records = tool_events.records_of(mine, tool_output_reader(store))
    start = records[0]
    assert isinstance(start, ConversationStarted)
    edits = "replace_in_file" in start.tools
    schema = flatten(load_schema(output_schema_name(start.stage, start.agent)))
    specs = tool_specs(start.tools, schema, edits=edits)
    if workspace.rev(start.base_commit) is None:
        raise StateError(
            f"{conversation}: its base commit {start.base_commit[:12]} is not in {workspace.repo}; "
            "fetch the project branch (git fetch origin somas/<project>) and replay again"
        )
    with ScratchTree.open(workspace, start.base_commit) as scratch:
        runner = None
        if "run_tests" in start.tools:
            runner = tests_runner(
                workspace, scratch, base_ref=base_branch, settings=config.validation
            )
        tools = RepositoryTools(
            scratch, specs, ToolSettings.of(config), run_tests=runner, require_change=edits
        )
        report = replay(records, tools)
    finished = any(e["event_type"] == "agent_loop_finished" for e in mine)
    return ConversationReplay(conversation, start.stage, start.agent, finished, report)
