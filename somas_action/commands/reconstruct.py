"""`somas reconstruct`: rebuild state.json from the log, or check that they agree."""

from __future__ import annotations

import difflib
from pathlib import Path

from somas_action.commands import Subparsers
from somas_action.errors import StateError
from somas_action.jsonio import atomic_write_text
from somas_action.store import ProjectStore, validate_project_id


def register(sub: Subparsers) -> None:
    """`somas reconstruct`."""
    p = sub.add_parser("reconstruct", help="rebuild state.json from transitions.jsonl")
    p.add_argument("project_id")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if they differ")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, check=a.check))


def run(repo: Path, project_id: str, check: bool) -> int:
    """Exit 0 when state.json is (now) the log's projection; with --check, 1 if it differs."""
    store = ProjectStore(repo, validate_project_id(project_id))
    if not store.exists():
        raise StateError(f"{store.log.path}: no log; nothing to reconstruct from")
    expected = store.reconstruct_text()
    try:
        current = store.state_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ""
    if current == expected:
        print(f"{store.state_path}: matches transitions.jsonl")
        return 0
    if check:
        diff = difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            "state.json (on disk)",
            "state.json (from transitions.jsonl)",
            lineterm="",
            n=1,
        )
        print("\n".join(diff))
        print(f"{store.state_path}: differs from the log; run `somas reconstruct {project_id}`")
        return 1
    backup = store.backup_state() if current else None
    atomic_write_text(store.state_path, expected)
    saved = f" (previous copy in {backup.name})" if backup else ""
    print(f"{store.state_path}: rebuilt from transitions.jsonl{saved}")
    return 0
