"""The project's git workspace: commit agent files to its branch, run its tests in isolation."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from somas_action.core.errors import WorkspaceError

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


@dataclass(frozen=True)
class TestRun:
    """What a real pytest run of the project branch reported."""

    commit: str
    exit_code: int
    total: int
    passed: int
    failed: int
    errors: int
    skipped: int
    duration_seconds: float
    failures: list[dict[str, str]]
    output_tail: str

    def as_artifact(self, branch: str, test_paths: list[str]) -> dict[str, Any]:
        """`artifacts/test_results.json`."""
        return {
            "branch": branch,
            "commit": self.commit,
            "test_paths": test_paths,
            "exit_code": self.exit_code,
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "duration_seconds": self.duration_seconds,
            "failures": self.failures,
            "output_tail": self.output_tail,
        }


class GitWorkspace:
    """A git repository; commits go straight to refs (the working tree is never touched)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def git(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        """Run git in the repository and return stdout, or raise WorkspaceError."""
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            input=stdin,
            capture_output=True,
            env=full_env,
            check=False,
        )
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit {result.returncode}"
            raise WorkspaceError(f"git {args[0]} failed in {self.repo}: {reason}")
        return result.stdout.decode(errors="replace").strip()

    def rev(self, ref: str) -> str | None:
        """The commit `ref` points at, or None."""
        try:
            return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        except WorkspaceError:
            return None

    def commit_files(
        self, branch: str, files: Sequence[tuple[str, str | None]], message: str
    ) -> str:
        """Commit `files` onto `branch` (created from HEAD if new) without a checkout.

        A content of None deletes the file (the tool loop's `delete_file`).
        """
        parent = self.rev(f"refs/heads/{branch}") or self.rev("HEAD")
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

    def run_tests(self, ref: str, test_paths: list[str], timeout_seconds: float) -> TestRun:
        """Run pytest on the tree of `ref` in a scratch folder; counts come from its JUnit XML."""
        commit = self.rev(ref)
        if commit is None:
            raise WorkspaceError(
                f"branch {ref!r} does not exist; the implementation stage makes it"
            )
        with tempfile.TemporaryDirectory(prefix="somas-validate-") as tmp:
            tree = Path(tmp) / "tree"
            tree.mkdir()
            self.export(commit, tree)
            missing = [p for p in test_paths if not (tree / p).exists()]
            if missing:
                raise WorkspaceError(f"test paths not in {ref}: {', '.join(missing)}")
            report = Path(tmp) / "junit.xml"
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(tree),
                "-o",
                "addopts=",
                f"--junitxml={report}",
                "--",
                *test_paths,
            ]
            src = tree / "src"
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    [str(src), str(tree)] if src.is_dir() else [str(tree)]
                ),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            started = time.monotonic()
            try:
                result = subprocess.run(
                    command,
                    cwd=tree,
                    env=env,
                    capture_output=True,
                    timeout=timeout_seconds,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise WorkspaceError(
                    f"tests did not finish within {timeout_seconds:.0f}s"
                ) from None
            duration = round(time.monotonic() - started, 3)
            output = result.stdout.decode(errors="replace")
            if not report.exists():
                raise WorkspaceError(
                    f"pytest wrote no report (exit {result.returncode}): {output[-300:]}"
                )
            return _parse_junit(report, commit, result.returncode, duration, output)


def _parse_junit(
    report: Path, commit: str, exit_code: int, duration: float, output: str
) -> TestRun:
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failures = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                failures.append(
                    {
                        "test": f"{case.get('classname', '')}::{case.get('name', '')}",
                        "kind": child.tag,
                        "message": (child.get("message") or "")[:500],
                    }
                )
    return TestRun(
        commit=commit,
        exit_code=exit_code,
        total=total,
        passed=total - failed - errors - skipped,
        failed=failed,
        errors=errors,
        skipped=skipped,
        duration_seconds=duration,
        failures=failures,
        output_tail="\n".join(output.strip().splitlines()[-15:]),
    )
