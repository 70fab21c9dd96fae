"""The `somas` command line: argparse, one function per command, one error boundary."""

from __future__ import annotations

import argparse
import errno
import importlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from somas_action import __version__
from somas_action.cli.crash_log import write_crash_log
from somas_action.cli.output import safe_line
from somas_action.core.errors import SomasError
from somas_action.github import actions_runtime

# Subcommand -> the module of `somas_action.cli.commands` that registers it. Only that module is
# imported to run a command, so `somas status` does not pay for the pipeline's imports; a test
# keeps this table equal to what the modules register.
COMMANDS: dict[str, str] = {
    "init": "init",
    "demo": "demo",
    "start": "drive",
    "advance": "drive",
    "approve": "drive",
    "reject": "drive",
    "status": "status",
    "reconstruct": "reconstruct",
    "replay": "replay",
    "list": "views",
    "health": "views",
    "monitor": "views",
    "verify": "views",
    "pause": "lifecycle",
    "unpause": "lifecycle",
    "cancel": "lifecycle",
    "restart": "lifecycle",
    "resume": "lifecycle",
    "reset": "lifecycle",
    "stop-all": "lifecycle",
    "start-all": "lifecycle",
    "backup": "recovery",
    "restore": "recovery",
    "dead-letters": "recovery",
    "incident": "recovery",
    "doctor": "doctor",
    "breaker": "breaker",
    "handle-event": "github",
    "setup-labels": "github",
    "authorize-event": "github",
    "answer-event": "github",
    "agent-run": "agent",
}
# A command line that is not understood exits with this (sysexits' EX_USAGE), so it is never
# mistaken for `health`/`monitor` reporting a critical finding (exit 2).
USAGE_ERROR = 64


class _Parser(argparse.ArgumentParser):
    """argparse with our exit code for usage errors (argparse's own is 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _command_name(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word after the global options)."""
    words = iter(argv)
    for word in words:
        if word == "--repo":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone (its module's subcommands), or for every command."""
    parser = _Parser(
        prog="somas", description="Drive SOMAS AI software pipelines and operate their state."
    )
    parser.add_argument("--version", action="version", version=f"somas {__version__}")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="repository holding .somas/ (default: .)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"somas_action.cli.commands.{name}").register(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one command; returns its exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_name(words)).parse_args(words)
    args.repo = args.repo.resolve()
    try:
        # Everything a command prints may quote issue text or agent replies: in Actions it is
        # printed with workflow commands disabled (our own annotations follow the block).
        # JSON needs no block: no line of json.dumps output can start with `::`.
        if getattr(args, "json", False):
            return int(args.func(args))
        with actions_runtime.untrusted_output():
            return int(args.func(args))
    finally:
        actions_runtime.flush()


# File-system faults answered with one line (exit 1): what happened, and what to do.
_FILE_FAULTS = {
    errno.ENOSPC: "no space left on the disk; free some, then run the same command again",
    errno.EDQUOT: "the disk quota is used up; free some space, then run the command again",
    errno.EROFS: "the file system is read-only; make it writable, then run the command again",
    errno.EACCES: "permission denied; fix the permissions, then run the command again",
    errno.EPERM: "operation not permitted; fix the permissions, then run the command again",
    errno.EISDIR: "a folder stands where a file should be; move it away",
}


def file_fault(exc: OSError) -> str | None:
    """The one line for a file-system fault (None: not one of those)."""
    advice = _FILE_FAULTS.get(exc.errno or 0)
    if advice is None:
        return None
    where = exc.filename or "a file SOMAS writes"
    # Writes are atomic (temp file + rename) and a failed append is cut back, so nothing was
    # recorded half-way; the command continues where it stopped when run again.
    return f"{where}: {advice} (nothing was recorded half-way)"


def _interrupts() -> tuple[list[bool], dict[int, object]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt once; later ones (the Actions runner sends
    SIGTERM 7.5 s after SIGINT) are ignored while the first is handled, so the exit stays 130.

    The ignoring is the operating system's (SIG_IGN): Python puts back the default handler of
    a Python-level one while it shuts down, and a SIGTERM then would still end it with 143.
    """
    interrupted = [False]
    previous: dict[int, object] = {}

    def on_signal(signum: int, frame: object) -> None:
        if interrupted[0]:
            return
        interrupted[0] = True
        for each in previous:
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    except ValueError:
        pass  # not the main thread (an embedding program): its signals are not ours
    return interrupted, previous


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: known errors are one line and exit 1, anything else exit 3."""
    interrupted, previous = _interrupts()
    try:
        return run(argv)
    except SomasError as exc:
        print(f"somas: error: {safe_line(str(exc))}", file=sys.stderr)
        actions_runtime.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("somas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except OSError as exc:
        line = file_fault(exc)
        if line is None:
            return _crash(exc)
        print(f"somas: error: {safe_line(line)}", file=sys.stderr)
        actions_runtime.error(line)
        return 1
    except RecursionError as exc:  # absurdly nested input somewhere we did not expect it
        return _crash(exc)
    except Exception as exc:  # the boundary: never show a raw traceback
        return _crash(exc)
    finally:
        if not interrupted[0]:  # once signalled, the process is on its way out: stay deaf
            for signum, handler in previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]


def _crash(exc: BaseException) -> int:
    log = write_crash_log()
    print(
        f"somas: unexpected error: {type(exc).__name__}: {safe_line(str(exc))} (details in "
        f"{log}; please report it)",
        file=sys.stderr,
    )
    return 3
