"""A tool loop in its own process, killed with SIGKILL when it first runs the tests.

`python -m tests.tool_child REPO URL API RECORDS PARENT`: the implementer's loop on REPO's
`main` against the fake AI server at URL, appending every record to RECORDS (one JSON line,
fsynced) the way the event log does, with the scratch worktree under PARENT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.budget import BudgetGuard
from somas_action.core.clock import SystemClock
from somas_action.core.conversation import Record, record_to_json
from somas_action.core.toolloop import LoopLimits, ModelPort, run_tool_loop
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from tests import tool_fixtures as lib
from tests.fakes import live


def killed_by_tests(tree: Path) -> dict[str, Any]:
    """The process dies the moment the tests would run: no result is ever recorded."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def model_for(api: str, url: str) -> ModelPort:
    """The real SDK client of `api` against the fake server."""
    clock = SystemClock()
    if api == "openai":
        from somas_action.providers.openai_tools import OpenAIToolClient

        return OpenAIToolClient("openai", "gpt-4o", f"{url}/v1", live.OPENAI_KEY, 10, clock)
    from somas_action.providers.anthropic_tools import AnthropicToolClient

    return AnthropicToolClient("claude-sonnet-4-20250514", url, live.ANTHROPIC_KEY, 10, clock)


def main(repo: str, url: str, api: str, records_path: str, parent: str) -> None:
    """Run the loop, appending each record to `records_path` as it happens."""
    with Path(records_path).open("a", encoding="utf-8") as out:

        def append(record: Record) -> None:
            out.write(json.dumps(record_to_json(record)) + "\n")
            out.flush()
            os.fsync(out.fileno())

        scratch = ScratchTree.open(GitWorkspace(Path(repo)), "main", parent=Path(parent))
        specs = tool_specs(EDIT_TOOLS, edits=True)
        settings = lib.tool_settings(("src/", "tests/"))
        tools = RepositoryTools(scratch, specs, settings, run_tests=killed_by_tests)
        start = lib.started(scratch.commit, scratch.base_tree(), [s.name for s in specs])
        append(start)
        model = model_for(api, url)
        guard = BudgetGuard(None, {})
        run_tool_loop(model, tools, [start], LoopLimits(20), SystemClock(), guard, append)


if __name__ == "__main__":
    main(*sys.argv[1:6])
