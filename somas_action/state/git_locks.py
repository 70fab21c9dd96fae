"""Stale git lock files left by a git process of ours that was killed, cleared safely.

git creates `<file>.lock` (the index, a ref) with O_EXCL and keeps it open until it commits or
rolls back; a SIGKILL in between leaves the file, and every later git command that needs it
fails ("Unable to create '….lock': File exists"), blocking recovery. A lock no process holds
open is stale: it is removed and the retry goes ahead. Each removal is kept for the recorder,
which records it as a `git_lock_cleared` event.

Where no process table can be read (not Linux), a lock is only taken for stale after
`UNSEEN_AGE_SECONDS`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_LOCK_RE = re.compile(r"Unable to create '([^']+\.lock)': File exists")
UNSEEN_AGE_SECONDS = 120.0


@dataclass(frozen=True)
class ClearedLock:
    """A stale lock file that was removed."""

    path: str
    age_seconds: float


_cleared: list[ClearedLock] = []


def stale_lock_in(stderr: str) -> Path | None:
    """The lock file a failed git command names as already existing, if any."""
    found = _LOCK_RE.search(stderr)
    return Path(found.group(1)) if found else None


def held_open(path: Path) -> bool | None:
    """Whether any process has `path` open (None: this system does not say)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = str(path.resolve())
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:
            continue  # another user's process, or gone
        for link in links:
            try:
                if os.readlink(link) == target:
                    return True
            except OSError:
                continue
    return False


def clear_if_stale(path: Path) -> bool:
    """Remove `path` if no process holds it (a killed git of ours left it); True if the
    command may be retried (removed, or already gone)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    held = held_open(path)
    if held or (held is None and age < UNSEEN_AGE_SECONDS):
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    _cleared.append(ClearedLock(str(path), round(max(age, 0.0), 1)))
    return True


def take_cleared() -> list[ClearedLock]:
    """The locks cleared since the last call (to record them), forgetting them."""
    taken = list(_cleared)
    _cleared.clear()
    return taken
