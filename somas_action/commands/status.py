"""`somas status`: one project's stage table, or every project on a line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from somas_action import names
from somas_action.commands import Subparsers
from somas_action.errors import SomasError
from somas_action.report import status_table
from somas_action.store import ProjectStore, projects_dir, validate_project_id


def project_ids(repo: Path) -> list[str]:
    """Every project folder's id, by issue number (backups and strays skipped)."""
    root = projects_dir(repo)
    if not root.is_dir():
        return []
    ids = [p.name for p in root.iterdir() if p.is_dir() and names.PROJECT_ID_RE.match(p.name)]
    return sorted(ids, key=lambda pid: int(pid.split("-")[1]))


def _summary(repo: Path, project_id: str) -> dict[str, Any]:
    try:
        state, _ = ProjectStore(repo, project_id).load()
    except SomasError as exc:
        return {"project_id": project_id, "status": "unreadable", "error": str(exc)}
    return {
        "project_id": project_id,
        "issue_number": state["issue_number"],
        "status": state["status"],
        "current_stage": state["current_stage"],
        "updated_at": state["updated_at"],
        "dead_letters": state["dead_letter_count"],
    }


def register(sub: Subparsers) -> None:
    """`somas status`."""
    p = sub.add_parser("status", help="one project's stages, or every project")
    p.add_argument("project_id", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, as_json=a.json))


def run(repo: Path, project_id: str | None, as_json: bool) -> int:
    """Print status; exit 1 if any listed project is unreadable."""
    if project_id:
        state, edit = ProjectStore(repo, validate_project_id(project_id)).load()
        if edit:
            print("note: state.json was edited by hand; the next command records the edit")
        print(json.dumps(state, indent=2) if as_json else status_table(state))
        return 0
    rows = [_summary(repo, pid) for pid in project_ids(repo)]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no projects in {projects_dir(repo)}")
    else:
        for row in rows:
            if row["status"] == "unreadable":
                print(f"{row['project_id']:<14} UNREADABLE  {row['error']}")
            else:
                print(
                    f"{row['project_id']:<14} {row['status']:<12} {row['current_stage']:<15} "
                    f"dead letters: {row['dead_letters']:<3} updated {row['updated_at']}"
                )
    return 1 if any(row["status"] == "unreadable" for row in rows) else 0
