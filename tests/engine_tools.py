"""A small stand-in for the tool loop's repository tools, over one checkout, for MCP tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CheckoutTools:
    """list/read/search with git, run_tests with pytest, in `root`; `fail_tests` to raise."""

    root: Path
    test_runs: list[str] = field(default_factory=list)

    def list_files(self, prefix: str) -> str:
        """Tracked files under `prefix`."""
        return self._git("ls-files", "--", prefix or ".")

    def read_file(self, path: str, start: int, end: int) -> str:
        """Numbered lines of a tracked file; an error for any other path."""
        if path not in self.list_files("").splitlines():
            raise ValueError(f"{path!r} is not a tracked file")
        lines = (self.root / path).read_text().splitlines()[start - 1 : end]
        return "\n".join(f"{start + i}: {line}" for i, line in enumerate(lines))

    def search(self, pattern: str, prefix: str) -> str:
        """git grep -n."""
        return self._git("grep", "-n", "-E", pattern, "--", prefix or ".")

    def run_tests(self) -> str:
        """pytest's last line."""
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        self.test_runs.append(result.stdout)
        return result.stdout.strip().splitlines()[-1]

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=False
        ).stdout.strip()
