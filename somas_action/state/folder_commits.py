"""Commit a project's folder after each recorded batch, so git history is the audit trail.

Used by `somas demo` and by the CLI's `--commit-state` on the current branch; `git log
--oneline .somas/projects/<id>/` then reads as one line per transition batch, and the
runbook's rollback (`git checkout <commit> -- .somas/projects/<id>/`) has a point per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from somas_action.core import names
from somas_action.core.domain import Event, State
from somas_action.state.git import GitWorkspace
from somas_action.state.locks import file_lock, locks_dir
from somas_action.state.state_branch import describe_batch


def committer(repo: Path) -> Callable[[State, list[Event]], None]:
    """An `on_commit` hook that commits the project folder (and the local tracker) to git."""
    workspace = GitWorkspace(repo)

    def commit(state: State, events: list[Event]) -> None:
        folder = f"{names.SOMAS_DIR}/{names.PROJECTS_DIR}"
        paths = [folder]
        if (repo / names.SOMAS_DIR / names.TRACKER_DIR).exists():
            paths.append(f"{names.SOMAS_DIR}/{names.TRACKER_DIR}")
        # One committer at a time per repository: runs of different projects share git's
        # index, and a second `git add` while the first holds index.lock would fail.
        with file_lock(locks_dir(repo) / "git-index.lock"):
            workspace.git("add", "-A", "--", *paths)
            if workspace.git("diff", "--cached", "--name-only"):
                workspace.git("commit", "-q", "-m", describe_batch(state, events), "--", *paths)

    return commit
