"""`somas status`: one project's stage table, or every project on a line."""

from __future__ import annotations

import json
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.cli.commands.views import list_projects
from somas_action.cli.output import echo
from somas_action.core.names import validate_project_id
from somas_action.core.report import status_table
from somas_action.state.store import ProjectStore


def register(sub: Subparsers) -> None:
    """`somas status`."""
    p = sub.add_parser("status", help="one project's stages, or every project")
    p.add_argument("project_id", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, as_json=a.json))


def run(repo: Path, project_id: str | None, as_json: bool) -> int:
    """Print status; exit 1 if any listed project is unreadable."""
    if project_id:
        state, changes = ProjectStore(repo, validate_project_id(project_id)).load()
        for change in changes:
            echo(f"note: {change.note}")
        if as_json:
            print(json.dumps(state, indent=2))
        else:
            echo(status_table(state))
        return 0
    return list_projects(repo, None, as_json)
