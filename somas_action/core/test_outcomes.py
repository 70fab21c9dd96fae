"""What one test run reported: per-test outcomes, counts, and where the figures came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]
"""A test's result. `error` covers collection errors, crashes and hung tests."""

ResultSource = Literal["junit", "output", "summary", "exit_code"]
"""Where a run's results came from, best first: a JUnit XML report, per-test lines in the
output, a `N passed, N failed` summary line, or the exit code alone."""

MESSAGE_CHARS = 500
DETAIL_CHARS = 2000


@dataclass(frozen=True)
class CaseResult:
    """One test as a runner reported it; `test` is stable between runs of the same runner."""

    test: str
    outcome: Outcome
    file: str | None = None
    message: str = ""
    detail: str = ""

    @property
    def failing(self) -> bool:
        """True for a failure or an error."""
        return self.outcome in ("failed", "error")


@dataclass(frozen=True)
class Counts:
    """How many tests had each outcome."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        """Every test counted."""
        return self.passed + self.failed + self.errors + self.skipped


def counts_of(cases: Iterable[CaseResult]) -> Counts:
    """Count the outcomes of `cases`."""
    tally = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for case in cases:
        tally[case.outcome] += 1
    return Counts(tally["passed"], tally["failed"], tally["error"], tally["skipped"])


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, keeping its end (where tracebacks say what failed)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :]


def first_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """The first non-empty line of `text`, at most `limit` characters."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""
