"""The scratch checkout an engine works in, and the diff it leaves behind.

The scratch is a standalone clone of the project branch, not a `git worktree`: a worktree
shares the repository's `.git/config`, where `actions/checkout` keeps the token that can push.
The clone's remote is removed, so the engine sees neither that config nor where it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from somas_action.state.git import BOT_EMAIL, BOT_NAME, GitWorkspace

_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "modified"}


@dataclass(frozen=True)
class ChangedFile:
    """One path the engine changed: added, modified or deleted."""

    path: str
    status: str


@dataclass(frozen=True)
class EngineDiff:
    """What the engine did to the tree, as `git diff --binary <base>` and the paths it names."""

    base_commit: str
    patch: str
    files: tuple[ChangedFile, ...]

    @property
    def empty(self) -> bool:
        """True when the engine changed nothing."""
        return not self.files


@dataclass(frozen=True)
class Scratch:
    """A checkout of `base_commit` at `path`."""

    path: Path
    base_commit: str


@contextmanager
def scratch_checkout(repo: Path, branch: str, path: Path) -> Iterator[Scratch]:
    """Clone `branch` of `repo` into `path` (which must not exist) for one engine run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    GitWorkspace(path.parent).git(
        "clone", "--quiet", "--no-tags", "--single-branch", "--branch", branch,
        f"file://{repo.resolve()}", str(path),
    )  # fmt: skip
    scratch = GitWorkspace(path)
    scratch.git("remote", "remove", "origin")
    # Engines that commit (aider, or a model asked to) need an identity; SOMAS's bot is it.
    scratch.git("config", "user.name", BOT_NAME)
    scratch.git("config", "user.email", BOT_EMAIL)
    yield Scratch(path=path, base_commit=scratch.git("rev-parse", "HEAD"))


def capture_diff(scratch: Scratch) -> EngineDiff:
    """Everything in the scratch tree that differs from the base commit, engine commits included."""
    git = GitWorkspace(scratch.path)
    git.git("add", "--all")
    patch = git.git("diff", "--cached", "--binary", "--no-color", scratch.base_commit)
    patch += "\n" if patch else ""  # `git` strips output; `git apply` needs the last newline
    listing = git.git("diff", "--cached", "--name-status", "--no-renames", scratch.base_commit)
    files = tuple(
        ChangedFile(path=path, status=_STATUS.get(status[:1], "modified"))
        for status, path in (line.split("\t", 1) for line in listing.splitlines() if line)
    )
    return EngineDiff(base_commit=scratch.base_commit, patch=patch, files=files)


def changed_contents(scratch: Scratch, diff: EngineDiff) -> list[tuple[str, bytes | None]]:
    """Each changed path with its new bytes (None: deleted), for the usual commit checks."""
    return [
        (f.path, None if f.status == "deleted" else (scratch.path / f.path).read_bytes())
        for f in diff.files
    ]
