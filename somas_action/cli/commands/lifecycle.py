"""`somas pause|unpause|cancel|restart|resume|reset|stop-all|start-all`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from somas_action.cli.commands import Subparsers, change_summary
from somas_action.cli.output import echo
from somas_action.config.actor import default_actor
from somas_action.core import names
from somas_action.core.domain import Event, State
from somas_action.core.names import validate_project_id

if TYPE_CHECKING:
    from somas_action.pipeline.operator import Operator


def _project(p: argparse.ArgumentParser) -> None:
    p.add_argument("project_id", type=_project_id)
    p.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _project_id(value: str) -> str:
    return validate_project_id(value)


def register(sub: Subparsers) -> None:
    """Lifecycle and emergency commands."""
    p = sub.add_parser("pause", help="stop a project from advancing")
    _project(p)
    p.add_argument("--reason", default="paused by operator")
    p.set_defaults(func=lambda a: _run(a, lambda op, who: op.pause(a.project_id, who, a.reason)))

    p = sub.add_parser("unpause", help="let a paused project continue")
    _project(p)
    p.set_defaults(func=lambda a: _run(a, lambda op, who: op.unpause(a.project_id, who)))

    p = sub.add_parser("cancel", help="end a project for good (files and log stay)")
    _project(p)
    p.add_argument("--reason", default="cancelled by operator")
    p.set_defaults(func=lambda a: _run(a, lambda op, who: op.cancel(a.project_id, who, a.reason)))

    p = sub.add_parser("restart", help="restart from a stage (backup + event), then advance")
    _project(p)
    p.add_argument("--stage", required=True)
    p.add_argument("--reason", default="restarted by operator")
    p.add_argument("--no-advance", action="store_true", help="only record the restart")
    p.add_argument(
        "--force", action="store_true", help="skip stages that have not completed (recorded)"
    )
    p.set_defaults(
        func=lambda a: _run(
            a,
            lambda op, who: op.restart(a.project_id, a.stage, who, a.reason, force=a.force),
            advance=True,
        )
    )

    p = sub.add_parser("resume", help="resume from the last (or a named) checkpoint, then advance")
    _project(p)
    p.add_argument("--checkpoint", help="checkpoint id (default: last successful)")
    p.add_argument("--no-advance", action="store_true", help="only record the resume")
    p.set_defaults(
        func=lambda a: _run(
            a, lambda op, who: op.resume(a.project_id, a.checkpoint, who), advance=True
        )
    )

    p = sub.add_parser("reset", help="archive the project folder and start fresh from the issue")
    _project(p)
    p.set_defaults(func=lambda a: reset(a.repo, a.project_id, a.actor, a.json))

    p = sub.add_parser("stop-all", help="emergency stop: disable the pipeline, pause all projects")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: stop_all(a.repo, a.actor, a.json))

    p = sub.add_parser("start-all", help="undo stop-all: enable the pipeline, unpause its pauses")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: start_all(a.repo, a.actor, a.json))


def operator(repo: Path, collect: list[Event] | None = None, emergency: bool = False) -> Operator:
    """An Operator over the repository's runner: prints one line per event, or collects them.

    `emergency`: stop-all and start-all work even when config.yml does not load (they only
    record pauses, which need no setting of it): the defaults stand in for it.
    """
    from somas_action.app.compose import cli_runner
    from somas_action.pipeline.operator import Operator

    return Operator(cli_runner(repo, collect, tolerate_broken_config=emergency))


def _run(
    args: argparse.Namespace,
    action: Callable[[Operator, str], State],
    advance: bool = False,
) -> int:
    events: list[Event] | None = [] if args.json else None
    op = operator(args.repo, events)
    who = args.actor or default_actor()
    state = action(op, who)
    code, reason = 0, None
    if advance and not args.no_advance:
        state, stop = op.runner.advance(state["project_id"], who)
        code, reason = stop.code, stop.reason
    if events is not None:
        print(json.dumps(change_summary(state, events, message=reason), indent=2))
        return code
    print(f"{state['project_id']}: {state['status']} at {state['current_stage']}")
    if reason:
        echo(reason)
    return code


def reset(repo: Path, project_id: str, actor: str | None, as_json: bool) -> int:
    """The runbook's full pipeline restart."""
    events: list[Event] | None = [] if as_json else None
    archived, state = operator(repo, events).reset(project_id, actor or default_actor())
    if events is not None:
        print(json.dumps(change_summary(state, events, archived_to=archived.name), indent=2))
        return 0
    print(f"archived the old project folder as {archived.name}")
    print(
        f"{state['project_id']}: started fresh from issue #{state['issue_number']}; "
        f"next: somas advance {project_id}"
    )
    return 0


def stop_all(repo: Path, actor: str | None, as_json: bool) -> int:
    """Disable the pipeline in config.yml, pause every active project, cancel runs."""
    from somas_action.cli.commands.views import load_all
    from somas_action.core.controls import ACTIVE_STATUSES
    from somas_action.pipeline.operator import STOP_ALL_REASON
    from somas_action.state.config_edit import set_pipeline_enabled

    who = actor or default_actor()
    path, backup, warning = set_pipeline_enabled(repo, False)
    if warning:
        print(f"somas: warning: {warning}", file=sys.stderr)
    events: list[Event] = []
    op = operator(repo, events, emergency=True)
    paused, skipped = [], []
    for pid, state, error in load_all(repo):
        if state is not None and state["status"] in ACTIVE_STATUSES:
            op.pause(pid, who, STOP_ALL_REASON)
            paused.append(pid)
        elif error:
            skipped.append({"project_id": pid, "error": error})
    from somas_action.app.compose import (
        tracker_for,  # GitHub's runs inside Actions, else none
    )

    cancelled = tracker_for(repo, op.runner.s.config, op.runner.s.clock).cancel_in_progress_runs()
    result = {
        "pipeline_enabled": False,
        "config": str(path),
        "config_backup": backup.name if backup else None,
        "paused": paused,
        "not_paused": skipped,
        "runs_cancelled": cancelled,
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    echo(
        f"{path}: pipeline.enabled set to false"
        + (f" (previous in {backup.name})" if backup else "")
    )
    echo(f"paused: {', '.join(paused) or 'none'}")
    for row in skipped:
        echo(f"{row['project_id']}: not paused: {row['error']}")
    echo(
        f"workflow runs cancelled: {len(cancelled)}"
        + (f" ({', '.join(cancelled)})" if cancelled else "")
    )
    echo("re-enable with: somas start-all")
    return 0


def start_all(repo: Path, actor: str | None, as_json: bool) -> int:
    """Enable the pipeline and unpause the projects stop-all paused."""
    from somas_action.cli.commands.views import load_all
    from somas_action.pipeline.operator import STOP_ALL_REASON
    from somas_action.state.config_edit import set_pipeline_enabled

    who = actor or default_actor()
    path, _, warning = set_pipeline_enabled(repo, True)
    if warning:
        print(f"somas: warning: {warning}", file=sys.stderr)
    op = operator(repo, [], emergency=True)
    unpaused = []
    for pid, state, _error in load_all(repo):
        pause = state["pause"] if state else None
        if (
            state
            and state["status"] == names.PAUSED
            and pause
            and pause["reason"] == STOP_ALL_REASON
        ):
            op.unpause(pid, who)
            unpaused.append(pid)
    if as_json:
        print(
            json.dumps(
                {"pipeline_enabled": True, "config": str(path), "unpaused": unpaused}, indent=2
            )
        )
        return 0
    echo(f"{path}: pipeline.enabled set to true")
    echo(f"unpaused: {', '.join(unpaused) or 'none'}")
    echo("projects continue with: somas advance <project-id> (or their next workflow run)")
    return 0
