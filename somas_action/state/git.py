"""The project's git workspace: commit agent files to its branch without a checkout.

(The repository's tests run in the sandbox: `validation.gate`.)"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from somas_action.core.errors import WorkspaceError
from somas_action.state.git_locks import clear_if_stale, stale_lock_in

BOT_NAME = "somas[bot]"
BOT_EMAIL = "somas-bot@users.noreply.github.com"


@contextmanager
def scratch_index(base: GitWorkspace, parent: str | None, prefix: str) -> Iterator[dict[str, str]]:
    """Environment for git plumbing on a private index holding `parent`'s tree, as the bot.

    Commits built this way never touch the user's working tree or index.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        env = {
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_AUTHOR_NAME": BOT_NAME,
            "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME,
            "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        }
        base.git("read-tree", *([parent] if parent else ["--empty"]), env=env)
        yield env


class GitWorkspace:
    """A git repository; commits go straight to refs (the working tree is never touched)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def git(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        """Run git in the repository and return stdout, or raise WorkspaceError.

        A stale lock file left by a killed git of ours is cleared and the command retried once.
        """
        result = self._run(args, stdin, env)
        if result.returncode != 0:
            error = result.stderr.decode(errors="replace")
            lock = stale_lock_in(error)
            if lock is not None and clear_if_stale(lock):
                result = self._run(args, stdin, env)
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
            reason = (fatal or lines or [f"exit {result.returncode}"])[0]
            raise WorkspaceError(f"git {args[0]} failed in {self.repo}: {reason}")
        return result.stdout.decode(errors="replace").strip()

    def _run(
        self, args: tuple[str, ...], stdin: bytes | None, env: dict[str, str] | None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["git", "-C", str(self.repo), *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, **(env or {})},
            check=False,
        )

    def rev(self, ref: str) -> str | None:
        """The commit `ref` points at, or None."""
        try:
            return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        except WorkspaceError:
            return None

    def branch_start(self, branch: str, *, create: bool) -> str:
        """Where work on `branch` starts: its tip, else HEAD (and with `create`, the branch is
        made there, so a stop or a crash before its first commit resumes on the same tip)."""
        tip = self.rev(f"refs/heads/{branch}")
        if tip is not None:
            return tip
        head = self.rev("HEAD")
        if head is None:
            raise WorkspaceError(f"{self.repo}: no commit yet; commit something first")
        if create:
            self.git("update-ref", f"refs/heads/{branch}", head, "0" * 40)
        return head

    def is_repository(self) -> bool:
        """Whether the folder is inside a git work tree."""
        try:
            return self.git("rev-parse", "--is-inside-work-tree") == "true"
        except WorkspaceError:
            return False

    def commit_files(
        self, branch: str, files: Sequence[tuple[str, str | None]], message: str
    ) -> str:
        """Commit `files` onto `branch` (created from HEAD if new) without a checkout.

        A content of None deletes the file (the tool loop's `delete_file`). Idempotent: when
        the branch already holds exactly these files (a retry after a crash between this commit
        and the events that record it), its tip is returned and nothing is committed again.
        """
        existing = self.rev(f"refs/heads/{branch}")
        parent = existing or self.rev("HEAD")
        # A changed file keeps its mode: an executable script stays executable.
        modes = self.file_modes(parent) if parent else {}
        with scratch_index(self, parent, "somas-index-") as env:
            for path, content in files:
                if content is None:
                    self.git("update-index", "--force-remove", "--", path, env=env)
                    continue
                blob = self.git("hash-object", "-w", "--stdin", stdin=content.encode())
                mode = "100755" if modes.get(path) == "100755" else "100644"
                self.git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self.git("write-tree", env=env)
            if existing and tree == self.git("rev-parse", f"{existing}^{{tree}}"):
                return existing
            parents = ["-p", parent] if parent else []
            commit = self.git("commit-tree", tree, *parents, "-m", message, env=env)
        old = self.rev(f"refs/heads/{branch}") or "0" * 40
        self.git("update-ref", f"refs/heads/{branch}", commit, old)
        return commit

    def file_modes(self, ref: str) -> dict[str, str]:
        """path -> git mode (`100644`, `100755`, `120000` …) of every file in `ref`'s tree."""
        listing = self.git("ls-tree", "-r", "-z", "--full-tree", ref)
        modes = {}
        for entry in filter(None, listing.split("\0")):
            info, _, path = entry.partition("\t")
            modes[path] = info.split(" ", 1)[0]
        return modes

    def export(self, ref: str, dest: Path) -> None:
        """Write the tree of `ref` into `dest` (no .git)."""
        result = subprocess.run(
            ["git", "-C", str(self.repo), "archive", "--format=tar", ref],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise WorkspaceError(f"git archive {ref} failed: {result.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
            archive.extractall(dest, filter="data")
