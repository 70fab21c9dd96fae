"""A scratch worktree of the project branch, where an agent's tools read and edit files.

It is a `git worktree` in a temporary folder: the user's checkout and index are never touched.
Its index holds exactly what the tools wrote (each write is staged at once), so `git ls-files`
and `git grep` see the agent's files, `git write-tree` names the state after every call (the
tree id each tool-call record carries), and files a test run leaves behind are never part of
the work.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from somas_action.core.errors import WorkspaceError
from somas_action.state.git import GitWorkspace

# The repository's hooks never run for our worktree (post-checkout would on `worktree add`).
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
# Each worktree is locked with its owner's pid and host, so a later run can tell the ones a
# killed run left behind (`prune_stale`) from the ones another live run is using.
_LOCK_REASON = "somas-tools pid {pid} host {host}"
_LOCK_PATTERN = re.compile(r"^somas-tools pid (?P<pid>\d+) host (?P<host>\S+)$")


class ScratchTree:
    """A detached worktree at `commit`; `close` removes it (and its entry in the repository)."""

    def __init__(self, workspace: GitWorkspace, root: Path, commit: str) -> None:
        self.workspace = workspace
        self.root = root
        self.commit = commit

    @classmethod
    def open(cls, workspace: GitWorkspace, ref: str, parent: Path | None = None) -> ScratchTree:
        """Check `ref` out into a new temporary folder (under `parent` if given)."""
        commit = workspace.rev(ref)
        if commit is None:
            raise WorkspaceError(f"{ref!r} is not a commit in {workspace.repo}")
        prune_stale(workspace)
        holder = Path(tempfile.mkdtemp(prefix="somas-tools-", dir=parent))
        root = holder / "tree"
        reason = _LOCK_REASON.format(pid=os.getpid(), host=socket.gethostname())
        workspace.git(
            *_NO_HOOKS, "worktree", "add", "--detach", "--quiet", "--lock", "--reason", reason,
            str(root), commit,
        )  # fmt: skip
        return cls(workspace, root, commit)

    def close(self) -> None:
        """Remove the worktree and its folder; safe to call twice."""
        if self.root.exists():
            # Already gone from git's list: the folder is removed below all the same.
            with contextlib.suppress(WorkspaceError):
                self.workspace.git("worktree", "remove", "--force", "--force", str(self.root))
        shutil.rmtree(self.root.parent, ignore_errors=True)
        self.workspace.git("worktree", "prune")

    def __enter__(self) -> ScratchTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- git in the worktree --------------------------------------------------------------------

    def git(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        """Run git in the worktree; stdout, or WorkspaceError on an exit code not in `ok_codes`."""
        result = subprocess.run(
            ["git", *_NO_HOOKS, "-C", str(self.root), *args],
            capture_output=True,
            check=False,
        )
        if result.returncode not in ok_codes:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit {result.returncode}"
            raise WorkspaceError(f"git {args[0]} failed in the scratch worktree: {reason}")
        return result.stdout.decode(errors="replace")

    def stage(self, path: str) -> None:
        """Record the tools' change of `path` (written or deleted) in the worktree's index."""
        if (self.root / path).exists():
            self.git("add", "--force", "--", path)
        else:
            self.git("rm", "--cached", "--quiet", "--ignore-unmatch", "--", path)

    def tree(self) -> str:
        """The git tree id of the files as the tools left them."""
        return self.git("write-tree").strip()

    def base_tree(self) -> str:
        """The tree id of the commit the worktree was made from."""
        return self.git("rev-parse", f"{self.commit}^{{tree}}").strip()

    def has_tree(self, tree: str) -> bool:
        """Whether the repository holds tree object `tree`."""
        return self.git("cat-file", "-t", tree, ok_codes=(0, 128)).strip() == "tree"

    def restore(self, tree: str) -> None:
        """Make the index and files exactly `tree` (untracked leftovers removed)."""
        self.git("read-tree", "--reset", "-u", tree)
        self.git("clean", "-fdxq")

    def changed_paths(self, base_tree: str) -> list[tuple[str, bool]]:
        """(path, deleted) for every file that differs from `base_tree`, sorted."""
        out = self.git("diff-index", "--cached", "--no-renames", "--name-status", "-z", base_tree)
        fields = out.split("\0")
        found = [(fields[i + 1], fields[i] == "D") for i in range(0, len(fields) - 1, 2)]
        return sorted(found)


def prune_stale(workspace: GitWorkspace) -> list[Path]:
    """Remove the scratch worktrees whose owning process (on this host) is gone; their paths.

    A run killed in the middle of a tool loop cannot clean up; its worktree stays registered
    in the repository (and its folder in the temp dir) until a later run prunes it here.
    """
    workspace.git("worktree", "prune")
    removed = []
    for path, reason in _locked_worktrees(workspace):
        match = _LOCK_PATTERN.match(reason)
        if match is None or match["host"] != socket.gethostname() or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(WorkspaceError):
            workspace.git("worktree", "remove", "--force", "--force", str(path))
        shutil.rmtree(path.parent, ignore_errors=True)
        removed.append(path)
    if removed:
        workspace.git("worktree", "prune")
    return removed


def _locked_worktrees(workspace: GitWorkspace) -> list[tuple[Path, str]]:
    """(path, lock reason) of every locked worktree of the repository."""
    found: list[tuple[Path, str]] = []
    path: Path | None = None
    for line in workspace.git("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line.startswith("locked ") and path is not None:
            found.append((path, line.removeprefix("locked ")))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    return True
