"""Where an agent may write: plain relative paths under the allowed prefixes, nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from somas_action.core.errors import WorkspaceError


def confined_path(path: str, allowed_prefixes: Iterable[str]) -> str:
    """Return `path` if it is a plain relative path under an allowed prefix; else raise."""
    plain = plain_path(path)
    if not any(
        path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in allowed_prefixes
    ):
        raise WorkspaceError(
            f"file path {path!r} is outside workspace.allowed_paths ({', '.join(allowed_prefixes)})"
        )
    return plain


def plain_path(path: str) -> str:
    """Return `path` if it is a plain relative path outside `.git/`, `.somas/`, `.github/`."""
    pure = PurePosixPath(path)
    # The raw segments, not `pure.parts`: PurePosixPath drops `.` and empty segments, so
    # `src/./a.py/.` would pass as `src/a.py` while git and the file system see the raw path.
    segments = path.split("/")
    if (
        pure.is_absolute()
        or any(part in ("..", ".", "") for part in segments)
        or segments[0] in (".git", ".somas", ".github")
        or "\\" in path
    ):
        raise WorkspaceError(f"file path {path!r} is not a plain relative path inside the project")
    return str(pure)
