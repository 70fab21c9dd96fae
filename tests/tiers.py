"""The test tiers, checked while tests run, so that every test sits in the tier it belongs to.

`make test` runs everything; `make test-fast` (`pytest --fast`) leaves out the tests marked with
any of `SLOW_MARKERS`. A marker says what a
test does, and the check holds both ways:

- doing it without the marker fails the test (it would slow the fast tier down or need what
  the fast tier does not set up);
- the marker without doing it fails the test too (it would be left out of the fast tier for
  nothing).

What counts, seen in the test's own process: `e2e` — the runner runs a pipeline stage
(`Runner.advance` is called and a `stage_started` event is appended, whether from the test, a
command or a GitHub event) or the composite action runs; `fakes` — the fake GitHub or fake AI
server is started; `subprocess` — a child process other than `git` is started (the somas
command, Python, a shell procedure). An `e2e` test may start child processes without
`subprocess`: running the generated project's tests is part of a pipeline. A test whose
pipelines run only in child processes is `subprocess`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from somas_action.core.events import EventType

E2E = "e2e"
FAKES = "fakes"
SUBPROCESS = "subprocess"
SLOW_MARKERS = (E2E, FAKES, SUBPROCESS)
# Markers whose presence also allows a use: an e2e run starts processes of its own.
_ALSO_ALLOWED_BY = {SUBPROCESS: (E2E,)}
# Child processes every tier may start: the repositories tests build are real git ones; `uname`
# is the standard library's `platform` asking once per process (the OpenAI SDK's headers).
_ANY_TIER_PROGRAMS = frozenset({"git", "uname"})


@dataclass
class TierCheck:
    """What one test is marked with, what it was seen doing, and what did not match."""

    test: str
    marks: frozenset[str]
    used: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    # A stage ran if the runner was asked to advance and a stage_started event was written
    # (either alone is cheap: a refused advance, a test that writes a crashed attempt).
    advanced: bool = False
    stage_started: bool = False

    def see(self, marker: str, what: str) -> None:
        """The test did `what`, which takes `marker`."""
        self.used.add(marker)
        allowed = {marker, *_ALSO_ALLOWED_BY.get(marker, ())}
        problem = f"{what}: mark it @pytest.mark.{marker}"
        if not allowed & self.marks and problem not in self.problems:
            self.problems.append(problem)

    def unused(self) -> list[str]:
        """Markers the test carries but never needed."""
        return [
            f"marked {marker} but nothing it did needed it: remove the mark"
            for marker in SLOW_MARKERS
            if marker in self.marks and marker not in self.used
        ]


_current: TierCheck | None = None


def is_slow(marks: Iterable[pytest.Mark]) -> bool:
    """Whether a test with these markers is left out of the fast tier."""
    return any(mark.name in SLOW_MARKERS for mark in marks)


def begin(test: str, marks: Iterable[str]) -> TierCheck:
    """Start checking a test (called by conftest's autouse fixture)."""
    global _current
    _current = TierCheck(test, frozenset(marks) & frozenset(SLOW_MARKERS))
    return _current


def end(check_unused: bool = True) -> list[str]:
    """Stop checking the current test; every mismatch between its marks and its doings."""
    global _current
    check, _current = _current, None
    if check is None:
        return []
    if check.advanced and check.stage_started:
        check.see(E2E, "runs pipeline stages (Runner.advance)")
    return [*check.problems, *(check.unused() if check_unused else [])]


@contextmanager
def watching(check: TierCheck | None) -> Iterator[None]:
    """Record into `check` for a while, then go back to the running test's check."""
    global _current
    previous, _current = _current, check
    try:
        yield
    finally:
        _current = previous


def uses(marker: str, what: str) -> None:
    """Record that the running test does `what` (outside a test, e.g. in a child: nothing)."""
    if _current is not None:
        _current.see(marker, what)


def note_advance() -> None:
    """The runner was asked to advance a project."""
    if _current is not None:
        _current.advanced = True


def note_written(event_types: Iterable[str]) -> None:
    """Events of these types were appended to a log."""
    if _current is not None and EventType.STAGE_STARTED in event_types:
        _current.stage_started = True


def _program(args: Any) -> str:
    if isinstance(args, str | bytes | os.PathLike):
        return os.path.basename(os.fsdecode(args))
    if isinstance(args, Sequence) and args:
        return os.path.basename(os.fsdecode(args[0]))
    return "?"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # `subprocess.Popen` is audited with (executable, args, cwd, env); a shell command shows
    # up as /bin/sh, which is what it starts.
    if event == "subprocess.Popen" and _current is not None:
        program = _program(args[1])
        if program not in _ANY_TIER_PROGRAMS:
            _current.see(SUBPROCESS, f"starts a child process ({program})")
    elif event in ("os.system", "os.posix_spawn", "os.exec") and _current is not None:
        _current.see(SUBPROCESS, f"starts a child process ({event})")


def install() -> None:
    """Watch child processes for the whole session (an audit hook cannot be removed later)."""
    sys.addaudithook(_audit)
