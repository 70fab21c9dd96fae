"""`somas start|advance|approve|reject`: drive one project on the local tracker."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from somas_action.cli.commands import Subparsers, change_summary
from somas_action.cli.output import echo
from somas_action.config.actor import default_actor
from somas_action.core import names
from somas_action.core.domain import Event, State
from somas_action.core.errors import CommandRefused
from somas_action.core.names import validate_project_id
from somas_action.core.report import status_table
from somas_action.state.local_tracker import LocalTracker

if TYPE_CHECKING:
    from somas_action.pipeline.runner import Runner


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(sub: Subparsers) -> None:
    """`somas start|advance|approve|reject`."""
    p = sub.add_parser("start", help="open the project for a (local) issue")
    p.add_argument("--issue", type=int, required=True, help="issue number")
    p.add_argument("--title", help="create the local issue with this title if it is missing")
    p.add_argument("--body", default="", help="body of a newly created local issue")
    _common(p)
    p.set_defaults(func=lambda a: start(a.repo, a.issue, a.title, a.body, a.actor, a.json))

    p = sub.add_parser("advance", help="run stages until a gate, a failure or completion")
    p.add_argument("project_id", type=validate_project_id)
    _common(p)
    p.set_defaults(func=lambda a: advance(a.repo, a.project_id, a.actor, a.json))

    p = sub.add_parser("approve", help="approve the project's open human gate")
    p.add_argument("project_id", type=validate_project_id)
    _common(p)
    p.set_defaults(func=lambda a: decide(a.repo, a.project_id, None, a.actor, a.json))

    p = sub.add_parser("reject", help="reject the open human gate and send the project back")
    p.add_argument("project_id", type=validate_project_id)
    p.add_argument("--reason", required=True)
    _common(p)
    p.set_defaults(func=lambda a: decide(a.repo, a.project_id, a.reason, a.actor, a.json))


def retry_on_conflict(command: Callable[[], State]) -> State:
    """Decide again when another writer recorded first (see pipeline.loading)."""
    from somas_action.pipeline.loading import retry_on_conflict as again

    return again(command)


def _runner(repo: Path, collect: list[Event] | None) -> Runner:
    # Imported here so that `somas status` and friends do not pay for jsonschema and the runner.
    from somas_action.app.compose import cli_runner

    return cli_runner(repo, collect)


def start(
    repo: Path, issue: int, title: str | None, body: str, actor: str | None, as_json: bool
) -> int:
    """Open the project for local issue `issue` (creating the issue if `title` is given)."""
    if issue < 1:
        raise CommandRefused(f"--issue: {issue} is not an issue number (1 or more)")
    tracker = LocalTracker(repo)
    events: list[Event] | None = [] if as_json else None
    runner = _runner(repo, events)
    if title is not None and not (tracker.issues_dir / f"{issue}.json").exists():
        created = tracker.create_issue(title, body, [names.PROJECT_LABEL])
        if created.number != issue:
            raise CommandRefused(f"--issue: the next free local issue number is {created.number}")
    state = retry_on_conflict(lambda: runner.start(issue, actor or default_actor()))
    if events is not None:
        print(json.dumps(change_summary(state, events), indent=2))
    else:
        echo(f"{state['project_id']}: {state['status']} at {state['current_stage']}")
    return 0


def advance(repo: Path, project_id: str, actor: str | None, as_json: bool) -> int:
    """Run the project's stages until something needs a person."""
    events: list[Event] | None = [] if as_json else None
    state, stop = _runner(repo, events).advance(project_id, actor or default_actor())
    if events is not None:
        print(json.dumps(change_summary(state, events, message=stop.reason), indent=2))
    else:
        echo(status_table(state))
        echo(stop.reason)
    return stop.code


def decide(
    repo: Path, project_id: str, reason: str | None, actor: str | None, as_json: bool
) -> int:
    """Approve (no reason) or reject (with a reason) the open human gate."""
    events: list[Event] | None = [] if as_json else None
    runner = _runner(repo, events)
    who = actor or default_actor()
    if reason is None:
        state = retry_on_conflict(lambda: runner.approve(project_id, who))
    else:
        state = retry_on_conflict(lambda: runner.reject(project_id, who, reason))
    if events is not None:
        print(json.dumps(change_summary(state, events), indent=2))
        return 0
    verdict = "approved" if reason is None else "rejected"
    echo(f"{project_id}: {verdict}; now {state['status']} at {state['current_stage']}")
    echo(f"next: somas advance {project_id}")
    return 0
