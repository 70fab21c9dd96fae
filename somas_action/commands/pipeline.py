"""`somas start|advance|approve|reject`: drive one project on the local tracker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from somas_action import names
from somas_action.actor import default_actor
from somas_action.adapters.local_tracker import LocalTracker
from somas_action.commands import Subparsers
from somas_action.errors import CommandRefused
from somas_action.report import status_table

if TYPE_CHECKING:
    from somas_action.runner import Runner
from somas_action.store import validate_project_id


def register(sub: Subparsers) -> None:
    """`somas start|advance|approve|reject`."""
    p = sub.add_parser("start", help="open the project for a (local) issue")
    p.add_argument("--issue", type=int, required=True, help="issue number")
    p.add_argument("--title", help="create the local issue with this title if it is missing")
    p.add_argument("--body", default="", help="body of a newly created local issue")
    p.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")
    p.set_defaults(func=lambda a: start(a.repo, a.issue, a.title, a.body, a.actor))

    p = sub.add_parser("advance", help="run stages until a gate, a failure or completion")
    p.add_argument("project_id")
    p.add_argument("--actor")
    p.set_defaults(func=lambda a: advance(a.repo, a.project_id, a.actor))

    p = sub.add_parser("approve", help="approve the project's open human gate")
    p.add_argument("project_id")
    p.add_argument("--actor")
    p.set_defaults(func=lambda a: approve(a.repo, a.project_id, a.actor))

    p = sub.add_parser("reject", help="reject the open human gate and send the project back")
    p.add_argument("project_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor")
    p.set_defaults(func=lambda a: reject(a.repo, a.project_id, a.reason, a.actor))


def _runner(repo: Path) -> Runner:
    # Imported here so that `somas status` and friends do not pay for jsonschema and the runner.
    from somas_action.app import build_runner, progress_printer
    from somas_action.clock import SystemClock

    clock = SystemClock()
    return build_runner(repo, clock=clock, on_event=progress_printer(clock))


def start(repo: Path, issue: int, title: str | None, body: str, actor: str | None) -> int:
    """Open the project for local issue `issue` (creating the issue if `title` is given)."""
    if issue < 1:
        raise CommandRefused(f"--issue: {issue} is not an issue number (1 or more)")
    tracker = LocalTracker(repo)
    runner = _runner(repo)
    if title is not None and not (tracker.issues_dir / f"{issue}.json").exists():
        created = tracker.create_issue(title, body, [names.PROJECT_LABEL])
        if created.number != issue:
            raise CommandRefused(f"--issue: the next free local issue number is {created.number}")
    state = runner.start(issue, actor or default_actor())
    print(f"{state['project_id']}: {state['status']} at {state['current_stage']}")
    return 0


def advance(repo: Path, project_id: str, actor: str | None) -> int:
    """Run the project's stages until something needs a person."""
    runner = _runner(repo)
    state, stop = runner.advance(validate_project_id(project_id), actor or default_actor())
    print(status_table(state))
    print(stop.reason)
    return stop.code


def approve(repo: Path, project_id: str, actor: str | None) -> int:
    """Approve the open human gate."""
    state = _runner(repo).approve(validate_project_id(project_id), actor or default_actor())
    print(f"{project_id}: approved; now {state['status']} at {state['current_stage']}")
    print(f"next: somas advance {project_id}")
    return 0


def reject(repo: Path, project_id: str, reason: str, actor: str | None) -> int:
    """Reject the open human gate."""
    state = _runner(repo).reject(validate_project_id(project_id), actor or default_actor(), reason)
    print(f"{project_id}: rejected; back to {state['current_stage']}")
    print(f"next: somas advance {project_id}")
    return 0
