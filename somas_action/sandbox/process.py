"""Run a command in its own session; on a timeout kill its whole process group, keep its output.

Output goes straight to a file, not a pipe: nothing is lost when the group is killed, a child
that keeps the descriptor open cannot block us, and the file's growth tells whether the command
is still making progress (the per-test timeout for runners that cannot enforce one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TimeoutKind = Literal["overall", "inactivity"]

POLL_SECONDS = 0.05
TERM_GRACE_SECONDS = 2.0
HEAD_BYTES = 256 * 1024
TAIL_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended. `exit_code` is None when it was killed."""

    exit_code: int | None
    output: str
    timed_out: TimeoutKind | None
    duration_seconds: float
    output_bytes: int


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout_seconds: float,
    inactivity_seconds: float | None = None,
) -> ProcessResult:
    """Run `argv` with stdout and stderr into `log`; kill the group at `timeout_seconds`, or
    when `log` has not grown for `inactivity_seconds`."""
    started = time.monotonic()
    with log.open("wb") as sink:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:  # the program is missing or not executable: a result, not a crash
            message = f"could not start {argv[0]}: {exc.strerror or exc}\n"
            return ProcessResult(127, message, None, 0.0, len(message))
        try:
            timed_out = _watch(process, log, started, timeout_seconds, inactivity_seconds)
        finally:
            _kill_group(process)
    duration = round(time.monotonic() - started, 3)
    exit_code = None if timed_out else process.returncode
    size = log.stat().st_size
    return ProcessResult(exit_code, read_bounded(log), timed_out, duration, size)


def _watch(
    process: subprocess.Popen[bytes],
    log: Path,
    started: float,
    timeout_seconds: float,
    inactivity_seconds: float | None,
) -> TimeoutKind | None:
    """Wait for `process`; the kind of timeout that ended it, or None when it exited."""
    deadline = started + timeout_seconds
    last_size, last_change = -1, started
    while True:
        try:
            process.wait(timeout=POLL_SECONDS)
            return None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now >= deadline:
            return "overall"
        size = log.stat().st_size
        if size != last_size:
            last_size, last_change = size, now
        elif inactivity_seconds is not None and now - last_change >= inactivity_seconds:
            return "inactivity"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the whole group, KILL what is left after a grace period; also reaps stragglers
    a finished command left running in its group."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        if wait is None:
            break
        if process.poll() is None:
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if not _group_alive(process.pid):
            break
    if process.poll() is None:
        process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def read_bounded(log: Path) -> str:
    """The log's text; a huge one keeps its start and its end (where summaries are)."""
    size = log.stat().st_size
    with log.open("rb") as stream:
        if size <= HEAD_BYTES + TAIL_BYTES:
            data = stream.read()
        else:
            head = stream.read(HEAD_BYTES)
            stream.seek(size - TAIL_BYTES)
            tail = stream.read()
            skipped = size - HEAD_BYTES - TAIL_BYTES
            data = head + f"\n… {skipped} bytes of output left out …\n".encode() + tail
    return data.decode("utf-8", errors="replace")
