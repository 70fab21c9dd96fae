"""One run at a time per project: the lease a run holds while it advances a project.

Locally the lease is an exclusive lock (`.somas/locks/<id>.lease`, released by the OS when its
process ends, however it ends), with the holder written into it so that a second run can say
who it waits for. A second `advance` of the same project waits for the first to finish, saying
so every half minute, and refuses clearly (`ProjectBusy`) if that takes longer than
`state.lease_wait_seconds`. Commands that only record a decision (approve, pause, cancel…) do
not take the lease: they append under the short project lock, and the running pipeline sees
them at its next safe point.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from somas_action.core.errors import ProjectBusy
from somas_action.state.locks import file_lock, locks_dir

# Say who we wait for at most this often.
SAY_EVERY_SECONDS = 30.0


def lease_path(repo: Path, project_id: str) -> Path:
    """The lease file of a project."""
    return locks_dir(repo) / f"{project_id}.lease"


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another run"
    if not isinstance(data, dict) or not data:
        return "another run"
    return (
        f"{data.get('actor', '?')} (pid {data.get('pid', '?')} on {data.get('host', '?')}, "
        f"since {data.get('since', '?')})"
    )


@contextmanager
def project_lease(
    repo: Path,
    project_id: str,
    actor: str,
    wait_seconds: float,
    say: Callable[[str], None],
) -> Iterator[None]:
    """Hold the project's lease for the body; wait for another holder, or refuse."""
    path = lease_path(repo, project_id)
    said = [-SAY_EVERY_SECONDS]

    def waiting(waited: float) -> None:
        if waited - said[0] >= SAY_EVERY_SECONDS:
            said[0] = waited
            say(
                f"{project_id}: another run is advancing it: {_holder(path)}; waiting for it "
                f"(up to {wait_seconds:.0f}s, waited {waited:.0f}s)"
            )

    try:
        with file_lock(path, wait_seconds=wait_seconds, on_wait=waiting) as fd:
            _write_holder(fd, actor)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
    except TimeoutError:
        raise ProjectBusy(
            f"{project_id}: another run has been advancing it for more than "
            f"{wait_seconds:.0f}s ({_holder(path)}); let it finish or stop it, then run "
            f"`somas advance {project_id}` again (state.lease_wait_seconds)"
        ) from None


def _write_holder(fd: int, actor: str) -> None:
    holder = {
        "actor": actor,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run": os.environ.get("GITHUB_RUN_ID", ""),
        "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
