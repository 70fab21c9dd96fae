"""`somas reconstruct`: rebuild state.json from the log, or check that they agree."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.cli.output import echo
from somas_action.core.errors import StateError
from somas_action.core.names import validate_project_id
from somas_action.state.jsonio import atomic_write_text, dumps_pretty
from somas_action.state.store import ProjectStore


def register(sub: Subparsers) -> None:
    """`somas reconstruct`."""
    p = sub.add_parser("reconstruct", help="rebuild state.json from transitions.jsonl")
    p.add_argument("project_id")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if they differ")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, check=a.check, as_json=a.json))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def run(repo: Path, project_id: str, check: bool, as_json: bool = False) -> int:
    """Make state.json and dead_letters.json the log's projection (`--check`: only compare)."""
    store = ProjectStore(repo, validate_project_id(project_id))
    if not store.exists():
        raise StateError(f"{store.log.path}: no log; nothing to reconstruct from")
    state_text, letters = store.reconstruct()
    letters_text = dumps_pretty(letters)
    files = [
        (store.state_path, _read(store.state_path), state_text),
        (store.dead_letters_path, _read(store.dead_letters_path), letters_text),
    ]
    differing = [(path, old, new) for path, old, new in files if old != new]
    if as_json:
        print(
            json.dumps(
                {
                    "project_id": project_id,
                    "matches": not differing,
                    "differing": [path.name for path, _, _ in differing],
                    "rebuilt": [] if check else [path.name for path, _, _ in differing],
                },
                indent=2,
            )
        )
    if not differing:
        if not as_json:
            echo(f"{store.state_path}: matches transitions.jsonl")
        return 0
    if check:
        if not as_json:
            for path, old, new in differing:
                diff = difflib.unified_diff(
                    old.splitlines(),
                    new.splitlines(),
                    f"{path.name} (on disk)",
                    f"{path.name} (from transitions.jsonl)",
                    lineterm="",
                    n=1,
                )
                print("\n".join(diff))
            echo(f"{store.dir}: differs from the log; run `somas reconstruct {project_id}`")
        return 1
    for path, old, new in differing:
        saved = ""
        if path == store.state_path and old:
            backup = store.backup_state()
            saved = f" (previous copy in {backup.name})" if backup else ""
        elif old:
            backup_path = path.with_name(f"{path.name}.backup")
            backup_path.write_text(old, encoding="utf-8")
            saved = f" (previous copy in {backup_path.name})"
        atomic_write_text(path, new)
        if not as_json:
            echo(f"{path}: rebuilt from transitions.jsonl{saved}")
    return 0
