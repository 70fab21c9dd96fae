"""Durable file writes and the one JSON style every file we write uses."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from somas_action.core.errors import StateError


def dumps_pretty(data: Any) -> str:
    """Pretty JSON (indent 2, `": "` separators) so the runbook's greps match."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def json_problem(exc: ValueError) -> str:
    """Where and why a JSON document failed to parse (also covers bad UTF-8)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return f"not UTF-8 text ({exc})" if isinstance(exc, UnicodeDecodeError) else str(exc)


def load_json_file(path: Path, fix: str) -> Any:
    """Parse a JSON file we wrote; each way it can be unreadable is one line naming `fix`.

    A missing file raises FileNotFoundError (callers decide what absence means); a folder in
    its place, text that is not UTF-8, JSON that does not parse or is nested absurdly deep are
    StateErrors.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise StateError(f"{path}: is a folder, not a file; {fix}") from None
    except NotADirectoryError:
        raise FileNotFoundError(path) from None
    except PermissionError as exc:
        raise StateError(f"{path}: cannot be read ({exc.strerror}); fix its permissions") from None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise StateError(f"{path}: not valid JSON ({json_problem(exc)}); {fix}") from None
    except RecursionError:
        raise StateError(f"{path}: JSON nested too deeply to be a SOMAS file; {fix}") from None


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename or a new file survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text`: temp file in the same folder, fsync, rename, fsync folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write `data` as pretty JSON."""
    atomic_write_text(path, dumps_pretty(data))
