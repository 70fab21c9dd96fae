"""Exclusive locks between SOMAS processes on one machine (`flock`).

Every read-modify-write of a shared file, and every append to a project's log, happens under
one of these. A lock dies with its process, so a killed run never leaves one behind. Lock files
live in `.somas/locks/` (ignored by git), never inside a project folder, which the state branch
and the runbook's `git checkout … -- .somas/projects/<id>/` replace wholesale.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from somas_action.core import names
from somas_action.core.names import validate_project_id

LOCKS_DIR = "locks"
# The wait between two tries of a lock someone else holds (it is released in milliseconds,
# except the lease, whose holder may work for minutes).
POLL_SECONDS = 0.05


def locks_dir(repo: Path) -> Path:
    """`.somas/locks` of a repository (created, with a .gitignore that ignores it all)."""
    folder = repo / names.SOMAS_DIR / LOCKS_DIR
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    return folder


def project_lock_path(repo: Path, project_id: str) -> Path:
    """The lock every append to the project's log holds."""
    return locks_dir(repo) / f"{validate_project_id(project_id)}.lock"


@contextmanager
def file_lock(
    path: Path,
    *,
    wait_seconds: float | None = None,
    on_wait: Callable[[float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[int]:
    """Hold an exclusive lock on `path` (created if missing); yields its file descriptor.

    `wait_seconds=None` waits as long as it takes; otherwise TimeoutError after that long,
    calling `on_wait(seconds waited)` between tries so the caller can say why it waits.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait_seconds, on_wait, sleep)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(
    fd: int,
    path: Path,
    wait_seconds: float | None,
    on_wait: Callable[[float], None] | None,
    sleep: Callable[[float], None],
) -> None:
    if wait_seconds is None and on_wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if wait_seconds is not None and waited >= wait_seconds:
                raise TimeoutError(f"{path}: held by another process for {waited:.0f}s") from None
            if on_wait is not None:
                on_wait(waited)
            sleep(POLL_SECONDS)


@contextmanager
def project_lock(repo: Path, project_id: str) -> Iterator[None]:
    """The one-writer-at-a-time lock of a project's log and files (held for milliseconds)."""
    with file_lock(project_lock_path(repo, project_id)):
        yield


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """A lock on a folder whose files are replaced by rename (the lock must outlive them)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
