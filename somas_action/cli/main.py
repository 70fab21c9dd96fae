"""The `somas` command line: argparse, one function per command, one error boundary."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from somas_action import __version__
from somas_action.cli.crash_log import write_crash_log
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


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: known errors are one line and exit 1, anything else exit 3."""
    # The Actions runner cancels with SIGINT, then SIGTERM 7.5 s later: treat both as an
    # interrupt so the current attempt is recorded as cancelled (writes are atomic anyway).
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(argv)
    except SomasError as exc:
        print(f"somas: error: {exc}", file=sys.stderr)
        actions_runtime.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("somas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # the boundary: never show a raw traceback
        log = write_crash_log()
        print(
            f"somas: unexpected error: {type(exc).__name__}: {exc} (details in {log}; "
            "please report it)",
            file=sys.stderr,
        )
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
