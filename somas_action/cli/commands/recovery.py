"""`somas backup|restore|dead-letters|incident`: data recovery and post-incident records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from somas_action.cli.commands import Subparsers, change_summary
from somas_action.cli.commands.lifecycle import operator
from somas_action.cli.output import echo
from somas_action.config.actor import default_actor
from somas_action.core.domain import Event
from somas_action.core.errors import CommandRefused
from somas_action.core.names import validate_project_id
from somas_action.state.store import ProjectStore


def _project(p: argparse.ArgumentParser) -> None:
    p.add_argument("project_id", type=validate_project_id)
    p.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(sub: Subparsers) -> None:
    """Backup, restore, dead letters and incident notes."""
    p = sub.add_parser("backup", help="take a dated state.json backup and list all backups")
    _project(p)
    p.add_argument("--list", action="store_true", help="only list, take no backup")
    p.set_defaults(func=lambda a: backup(a.repo, a.project_id, a.list, a.json, a.actor))

    p = sub.add_parser("restore", help="restore a state.json backup (an audited event)")
    _project(p)
    p.add_argument("--from", dest="name", help="backup file name (default: the newest valid)")
    p.add_argument(
        "--force", action="store_true", help="restore a backup older than the log (recorded)"
    )
    p.set_defaults(func=lambda a: restore(a.repo, a.project_id, a.name, a.actor, a.json, a.force))

    p = sub.add_parser("dead-letters", help="list, show, retry or purge dead letters")
    _project(p)
    p.add_argument("action", choices=["list", "show", "retry", "purge"])
    p.add_argument("id", nargs="?", help="dead letter id (show, retry)")
    p.add_argument("--no-advance", action="store_true", help="retry: only record it")
    p.add_argument(
        "--force", action="store_true", help="retry: even if the project moved past the stage"
    )
    p.set_defaults(func=lambda a: dead_letters(a))

    p = sub.add_parser("incident", help="record an incident note or its resolution")
    p.add_argument("action", choices=["note", "resolve"])
    _project(p)
    p.add_argument("--text", required=True)
    p.set_defaults(func=lambda a: incident(a.repo, a.project_id, a.action, a.text, a.actor, a.json))


def backup(repo: Path, project_id: str, list_only: bool, as_json: bool, actor: str | None) -> int:
    """Take a dated backup (unless --list) and list every backup."""
    store = ProjectStore(repo, project_id)
    taken = None
    if not list_only:
        taken = operator(repo).backup(project_id, actor or default_actor())
    rows = [
        {"name": p.name, "bytes": p.stat().st_size, "last_event_seq": _seq_of(p)}
        for p in store.backups()
    ]
    if as_json:
        print(json.dumps({"taken": taken.name if taken else None, "backups": rows}, indent=2))
        return 0
    if taken:
        print(f"backed up state.json to {taken.name}")
    for row in rows:
        print(f"  {row['name']:<32} event #{row['last_event_seq'] or '?':<6} {row['bytes']:>8} B")
    if not rows:
        print("  no backups")
    return 0


def _seq_of(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["last_event"]["seq"])
    except (ValueError, KeyError, TypeError):
        return None


def restore(
    repo: Path, project_id: str, name: str | None, actor: str | None, js: bool, force: bool
) -> int:
    """Restore a backup as an event and explain how it differs from the log."""
    events: list[Event] | None = [] if js else None
    who = actor or default_actor()
    state, why = operator(repo, events).restore(project_id, name, who, force)
    if events is not None:
        print(json.dumps(change_summary(state, events, explanation=why), indent=2))
        return 0
    echo(f"{project_id}: restored; now {state['status']} at {state['current_stage']}")
    echo(why)
    return 0


def dead_letters(args: argparse.Namespace) -> int:
    """`somas dead-letters <id> list|show ID|retry ID|purge`."""
    repo, pid, who = args.repo, args.project_id, args.actor or default_actor()
    events: list[Event] | None = [] if args.json else None
    op = operator(repo, events)
    if args.action in ("show", "retry") and not args.id:
        raise CommandRefused(f"dead-letters {args.action}: give the dead letter id (see `list`)")
    if args.action == "purge":
        count, backup_path = op.purge_dead_letters(pid, who)
        if args.json:
            print(json.dumps({"purged": count, "backup": backup_path.name}, indent=2))
            return 0
        print(
            f"purged {count} dead letter(s); the previous queue is in {backup_path.name} "
            "and every entry stays in transitions.jsonl"
        )
        return 0
    if args.action == "retry":
        state = op.retry_dead_letter(pid, args.id, who, force=args.force)
        code, reason = 0, None
        if not args.no_advance:
            state, stop = op.runner.advance(pid, who)
            code, reason = stop.code, stop.reason
        if events is not None:
            print(json.dumps(change_summary(state, events, message=reason), indent=2))
            return code
        echo(
            f"{pid}: retried with the recorded inputs; now {state['status']} at "
            f"{state['current_stage']}"
        )
        if reason:
            echo(reason)
        return code
    letters = op.dead_letters(pid, who)
    if args.action == "show":
        match = [d for d in letters if d["id"] == args.id]
        if not match:
            known = ", ".join(d["id"] for d in letters) or "none"
            raise CommandRefused(f"no dead letter {args.id!r}; queued: {known}")
        print(json.dumps(match[0], indent=2))
        return 0
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    for d in letters:
        echo(
            f"{d['id']}  {d['created_at'][:16]}  {d['stage']:<14} attempt {d['attempt']}/"
            f"{d['max_attempts']}  {d['error']['kind']}: {d['error']['message']}",
            16,
        )
    if not letters:
        print("no dead letters")
    return 0


def incident(
    repo: Path, project_id: str, action: str, text: str, actor: str | None, as_json: bool
) -> int:
    """Append an incident note or resolution to the project's log."""
    events: list[Event] | None = [] if as_json else None
    who = actor or default_actor()
    state = operator(repo, events).incident(project_id, text, action == "resolve", who)
    record = state["incident"]
    if events is not None:
        print(json.dumps(change_summary(state, events, incident=record), indent=2))
        return 0
    if record is not None:
        print(f"{project_id}: incident {record['status']} ({record['notes']} note(s))")
    return 0
