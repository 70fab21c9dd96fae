"""Fault hooks for the fault suite, loaded at start-up when this folder is on PYTHONPATH.

Python imports `sitecustomize` before running `-m somas_action`. The hooks act only when the
suite asks for them through the environment, and the variables are removed at once so that no
child process (git, the generated project's pytest) inherits them:

- `SOMAS_FAULT_KILL_AT=N`: SIGKILL this process just before its N-th durable operation
  (an `os.fsync`, `os.replace`/`os.rename`, `os.ftruncate` or a `git` subprocess).
- `SOMAS_FAULT_COUNT_FILE=path`: write the number of durable operations done to `path` at exit.
- `SOMAS_FAULT_AGENT_DELAY=seconds`: every recorded agent reply takes that long (a window for
  kills and signals "during an agent call").
- `SOMAS_FAULT_CLOCK_OFFSET=seconds`: the system clock is that far ahead (or behind, if negative).

It only touches names that every version of SOMAS under test has, so the same hooks measure the
starting commit ("before") and the current code ("after").
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from typing import Any

_KILL_AT = int(os.environ.pop("SOMAS_FAULT_KILL_AT", "0") or 0)
_COUNT_FILE = os.environ.pop("SOMAS_FAULT_COUNT_FILE", "")
_DELAY = float(os.environ.pop("SOMAS_FAULT_AGENT_DELAY", "0") or 0)
_OFFSET = float(os.environ.pop("SOMAS_FAULT_CLOCK_OFFSET", "0") or 0)
_done = 0


def _durable(kind: str) -> None:
    """Count one durable operation; die just before the chosen one."""
    global _done
    _done += 1
    if _KILL_AT and _done == _KILL_AT:
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(module: Any, name: str) -> None:
    real = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _durable(name)
        return real(*args, **kwargs)

    setattr(module, name, wrapped)


def _is_git(args: Any) -> bool:
    argv = args[0] if args else None
    return isinstance(argv, list | tuple) and bool(argv) and str(argv[0]).endswith("git")


def _install_counters() -> None:
    for name in ("fsync", "replace", "rename", "ftruncate"):
        _wrap(os, name)
    real_init = subprocess.Popen.__init__

    def popen_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        if _is_git(args) or _is_git((kwargs.get("args"),)):
            _durable("git")
        real_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
    if _COUNT_FILE:

        def write_count() -> None:
            with open(_COUNT_FILE, "w", encoding="utf-8") as handle:
                handle.write(str(_done))

        atexit.register(write_count)


def _install_delay() -> None:
    import time

    from somas_action.providers import recorded

    real = recorded.RecordedProvider.invoke

    def slow(self: Any, request: Any) -> Any:
        time.sleep(_DELAY)
        return real(self, request)

    recorded.RecordedProvider.invoke = slow  # type: ignore[method-assign]


def _install_clock() -> None:
    from datetime import timedelta

    from somas_action.core import clock

    real = clock.SystemClock.now

    def shifted(self: Any) -> Any:
        return real(self) + timedelta(seconds=_OFFSET)

    clock.SystemClock.now = shifted  # type: ignore[method-assign]


if _KILL_AT or _COUNT_FILE:
    _install_counters()
if _DELAY:
    _install_delay()
if _OFFSET:
    _install_clock()
