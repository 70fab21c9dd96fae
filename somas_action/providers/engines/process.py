"""Running an engine's process: the sandbox seam, and a plain process-group runner behind it.

The engine runner never starts a process itself: it calls a `Sandbox`, "run this argv with
this environment in this folder". The validation issue's sandbox (bubblewrap, no network but
the model endpoint) plugs in here; `run_in_process_group` is the unisolated fallback that
still gives each run its own process group, killed whole on timeout and after exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# After SIGTERM, how long the group may take to exit before SIGKILL.
TERM_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessResult:
    """How the process ended: its exit code (None if killed by us) and whether time ran out."""

    exit_code: int | None
    timed_out: bool


class Sandbox(Protocol):
    """Runs one command with exactly `env`, in `cwd`, output to files, within a time limit."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        stdin: Path | None,
        stdout: Path,
        stderr: Path,
        timeout_seconds: float,
    ) -> ProcessResult:
        """Run `argv`; on timeout kill its whole process group and say so."""


def run_in_process_group(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdin: Path | None,
    stdout: Path,
    stderr: Path,
    timeout_seconds: float,
) -> ProcessResult:
    """A Sandbox with no isolation beyond the environment given: a new session, group-killed."""
    with (
        open(stdin or os.devnull, "rb") as source,
        open(stdout, "ab") as out,
        open(stderr, "ab") as err,
    ):
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=source,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            code: int | None = process.wait(timeout=timeout_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = _terminate(process), True
        # Children the engine left behind (servers, watchers) go with it, success or not.
        _signal_group(process.pid, signal.SIGKILL)
    return ProcessResult(exit_code=None if timed_out else code, timed_out=timed_out)


def _terminate(process: subprocess.Popen[bytes]) -> int | None:
    _signal_group(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=TERM_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        return process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)
