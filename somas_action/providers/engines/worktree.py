"""The scratch checkout an engine works in, and the diff it leaves behind.

The scratch is a standalone clone of the project branch, not a `git worktree`: a worktree
shares the repository's `.git/config`, where `actions/checkout` keeps the token that can push.
The clone's remote is removed, so the engine sees neither that config nor where it came from.

The clone's git folder lives beside the tree, not in it (`--separate-git-dir`): the sandbox
shows it to the engine read-only, so an engine cannot plant a hook, an fsmonitor or a filter
in the config that SOMAS's own git commands on the tree will read afterwards. Those commands
also switch hooks and fsmonitor off explicitly, for the unisolated fallback.
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
    """A checkout of `base_commit` at `path`, its git folder at `git_dir`."""

    path: Path
    base_commit: str
    git_dir: Path

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """git on the tree through the trusted git folder: no hooks, no fsmonitor (`env`
        adds variables, e.g. a private index)."""
        return GitWorkspace(self.path).git(*SAFE_GIT, *args, env=self.git_env | (env or {}))

    @property
    def git_env(self) -> dict[str, str]:
        """GIT_DIR and GIT_WORK_TREE: a `.git` file the engine wrote in the tree is ignored."""
        return {"GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(self.path)}


# Settings that would run a program from a config file: off for every command on a scratch.
SAFE_GIT = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


@contextmanager
def scratch_checkout(repo: Path, branch: str, path: Path) -> Iterator[Scratch]:
    """Clone `branch` of `repo` into `path` (which must not exist) for one engine run; its
    git folder goes to `<path>.git` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git_dir = path.with_name(f"{path.name}.git")
    GitWorkspace(path.parent).git(
        "clone", "--quiet", "--no-tags", "--single-branch", "--branch", branch,
        "--separate-git-dir", str(git_dir), f"file://{repo.resolve()}", str(path),
    )  # fmt: skip
    clone = GitWorkspace(path)
    clone.git("remote", "remove", "origin")
    # Engines that commit (aider, or a model asked to) need an identity; SOMAS's bot is it.
    clone.git("config", "user.name", BOT_NAME)
    clone.git("config", "user.email", BOT_EMAIL)
    yield Scratch(path=path, base_commit=clone.git("rev-parse", "HEAD"), git_dir=git_dir)


def capture_diff(scratch: Scratch) -> EngineDiff:
    """Everything in the scratch tree that differs from the base commit, engine commits included."""
    scratch.git("add", "--all")
    # No external diff or textconv program: in the unisolated fallback the engine could have
    # named one in the clone's config.
    plain = ("--no-ext-diff", "--no-textconv")
    patch = scratch.git("diff", "--cached", *plain, "--binary", "--no-color", scratch.base_commit)
    patch += "\n" if patch else ""  # `git` strips output; `git apply` needs the last newline
    listing = scratch.git(
        "diff", "--cached", *plain, "--name-status", "--no-renames", scratch.base_commit
    )
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
