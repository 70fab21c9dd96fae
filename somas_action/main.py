"""The `somas` command line: argparse, one function per command, one error boundary."""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from somas_action import __version__
from somas_action.commands import demo, init, pipeline, reconstruct, status
from somas_action.errors import SomasError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="somas", description="Drive SOMAS AI software pipelines and operate their state."
    )
    parser.add_argument("--version", action="version", version=f"somas {__version__}")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="repository holding .somas/ (default: .)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="scaffold .somas/ (config and agents) into a repository")
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = sub.add_parser("demo", help="run the whole pipeline locally on the embedded default")
    p.add_argument("--dir", type=Path, help="empty folder for the demo repository")

    p = sub.add_parser("start", help="open the project for a (local) issue")
    p.add_argument("--issue", type=int, required=True, help="issue number")
    p.add_argument("--title", help="create the local issue with this title if it is missing")
    p.add_argument("--body", default="", help="body of a newly created local issue")
    p.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")

    p = sub.add_parser("advance", help="run stages until a gate, a failure or completion")
    p.add_argument("project_id")
    p.add_argument("--actor")

    p = sub.add_parser("approve", help="approve the project's open human gate")
    p.add_argument("project_id")
    p.add_argument("--actor")

    p = sub.add_parser("reject", help="reject the open human gate and send the project back")
    p.add_argument("project_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor")

    p = sub.add_parser("status", help="one project's stages, or every project")
    p.add_argument("project_id", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("reconstruct", help="rebuild state.json from transitions.jsonl")
    p.add_argument("project_id")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if they differ")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one command; returns its exit code."""
    args = _parser().parse_args(argv)
    repo: Path = args.repo.resolve()
    if args.command == "init":
        return init.run(repo, force=args.force)
    if args.command == "demo":
        return demo.run(args.dir)
    if args.command == "start":
        return pipeline.start(repo, args.issue, args.title, args.body, args.actor)
    if args.command == "advance":
        return pipeline.advance(repo, args.project_id, args.actor)
    if args.command == "approve":
        return pipeline.approve(repo, args.project_id, args.actor)
    if args.command == "reject":
        return pipeline.reject(repo, args.project_id, args.reason, args.actor)
    if args.command == "status":
        return status.run(repo, args.project_id, as_json=args.json)
    if args.command == "reconstruct":
        return reconstruct.run(repo, args.project_id, check=args.check)
    raise AssertionError(args.command)  # pragma: no cover - argparse restricts commands


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: known errors are one line and exit 1, anything else exit 3."""
    try:
        return run(argv)
    except SomasError as exc:
        print(f"somas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("somas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # the boundary: never show a raw traceback
        with tempfile.NamedTemporaryFile(
            "w", prefix="somas-crash-", suffix=".log", delete=False
        ) as log:
            traceback.print_exc(file=log)
        print(
            f"somas: unexpected error: {type(exc).__name__}: {exc} (details in {log.name}; "
            "please report it)",
            file=sys.stderr,
        )
        return 3
