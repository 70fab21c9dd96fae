"""`somas replay`: re-run a project's recorded tool conversations with no model and no key."""

from __future__ import annotations

import json
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.cli.output import echo
from somas_action.core import names
from somas_action.core.errors import StateError
from somas_action.core.names import validate_project_id


def register(sub: Subparsers) -> None:
    """`somas replay`."""
    p = sub.add_parser(
        "replay",
        help="re-run a project's recorded tool calls with no model; name the first divergence",
    )
    p.add_argument("project_id")
    p.add_argument("--stage", help="only the conversations of this stage")
    p.add_argument(
        "--base", default=names.DEFAULT_BASE_BRANCH, help="the base branch (default: main)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, a.stage, a.base, as_json=a.json))


def run(repo: Path, project_id: str, stage: str | None, base: str, as_json: bool = False) -> int:
    """Replay each conversation; exit 1 at a divergence."""
    # Imported here so that light commands do not pay for the pipeline's imports.
    from somas_action.config.loader import load_config
    from somas_action.pipeline.replay import replay_project
    from somas_action.state.git import GitWorkspace
    from somas_action.state.store import ProjectStore

    store = ProjectStore(repo, validate_project_id(project_id))
    if not store.exists():
        raise StateError(f"{store.log.path}: no log; `somas list` shows the projects")
    results = replay_project(
        store, GitWorkspace(repo), load_config(repo), base_branch=base, stage=stage
    )
    diverged = [r for r in results if r.report.divergence is not None]
    if as_json:
        print(
            json.dumps(
                {
                    "project_id": project_id,
                    "identical": not diverged,
                    "conversations": [
                        {
                            "conversation": r.conversation,
                            "stage": r.stage,
                            "agent": r.agent,
                            "turns": r.report.turns,
                            "tool_calls": r.report.tool_calls,
                            "divergence": r.report.divergence.describe()
                            if r.report.divergence
                            else None,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    else:
        for result in results:
            echo(result.describe())
    return 1 if diverged else 0
