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
from somas_action.state.store import ProjectStore, legacy_text

# Compared a block at a time, so --check never holds the file next to the expected text.
_BLOCK = 1 << 16


def register(sub: Subparsers) -> None:
    """`somas reconstruct`."""
    p = sub.add_parser("reconstruct", help="rebuild state.json from transitions.jsonl")
    p.add_argument("project_id")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if they differ")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: run(a.repo, a.project_id, check=a.check, as_json=a.json))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    except IsADirectoryError:
        raise StateError(f"{path}: is a folder, not a file; move it away first") from None


def same_as_file(path: Path, text: str) -> bool:
    """Whether `path` holds exactly `text`, compared a block at a time."""
    expected = text.encode()
    try:
        with open(path, "rb") as handle:
            position = 0
            while block := handle.read(_BLOCK):
                if block != expected[position : position + len(block)]:
                    return False
                position += len(block)
            return position == len(expected)
    except (FileNotFoundError, IsADirectoryError):
        return False


def run(repo: Path, project_id: str, check: bool, as_json: bool = False) -> int:
    """Make state.json and dead_letters.json the log's projection (`--check`: only compare)."""
    store = ProjectStore(repo, validate_project_id(project_id))
    if not store.log.path.exists():
        raise StateError(f"{store.log.path}: no log; nothing to reconstruct from")
    state_text, letters, cut = store.reconstruct()
    letters_text = dumps_pretty(letters)
    wanted = [(store.state_path, state_text), (store.dead_letters_path, letters_text)]
    differing = [
        (path, text)
        for path, text in wanted
        if not same_as_file(path, text)
        and not (path == store.state_path and same_as_file(path, legacy_text(state_text)))
    ]
    if as_json:
        print(
            json.dumps(
                {
                    "project_id": project_id,
                    "matches": not differing and cut is None,
                    "differing": [path.name for path, _ in differing],
                    "rebuilt": [] if check else [path.name for path, _ in differing],
                },
                indent=2,
            )
        )
    if check:
        return _report(store, project_id, differing, cut is not None, as_json)
    with store.locked():
        if cut is not None:
            store.log.cut(cut.offset, cut.aside)
            if not as_json:
                echo(f"{store.log.path}: torn end moved to transitions.jsonl.torn")
        for path, text in differing:
            _replace(store, path, text, as_json)
    if not differing and not as_json:
        echo(f"{store.state_path}: matches transitions.jsonl")
    return 0


def _report(
    store: ProjectStore,
    project_id: str,
    differing: list[tuple[Path, str]],
    torn: bool,
    as_json: bool,
) -> int:
    if not differing and not torn:
        if not as_json:
            echo(f"{store.state_path}: matches transitions.jsonl")
        return 0
    if not as_json:
        for path, new in differing:
            diff = difflib.unified_diff(
                _read(path).splitlines(),
                new.splitlines(),
                f"{path.name} (on disk)",
                f"{path.name} (from transitions.jsonl)",
                lineterm="",
                n=1,
            )
            print("\n".join(diff))
        if torn:
            echo(f"{store.log.path}: ends in a torn line or a batch cut short")
        echo(f"{store.dir}: differs from the log; run `somas reconstruct {project_id}`")
    return 1


def _replace(store: ProjectStore, path: Path, new: str, as_json: bool) -> None:
    old = _read(path)
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
