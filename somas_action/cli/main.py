"""The `somas` command line: argparse, one function per command, one error boundary."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from somas_action import __version__
from somas_action.cli.commands import (
    agent,
    breaker,
    demo,
    doctor,
    drive,
    init,
    lifecycle,
    reconstruct,
    recovery,
    status,
    views,
)
from somas_action.cli.commands import github as github_commands
from somas_action.cli.crash_log import write_crash_log
from somas_action.core.errors import SomasError
from somas_action.github import actions_runtime

# Each module adds its own subcommands; a new command group is one line here.
COMMAND_MODULES = (
    init,
    demo,
    drive,
    status,
    reconstruct,
    views,
    lifecycle,
    recovery,
    doctor,
    breaker,
    github_commands,
    agent,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="somas", description="Drive SOMAS AI software pipelines and operate their state."
    )
    parser.add_argument("--version", action="version", version=f"somas {__version__}")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="repository holding .somas/ (default: .)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one command; returns its exit code."""
    args = _parser().parse_args(argv)
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
