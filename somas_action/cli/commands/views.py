"""`somas list|health|monitor|verify`: read-only views for operators."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from somas_action.cli.commands import Subparsers
from somas_action.cli.output import echo
from somas_action.core import names
from somas_action.core.domain import State
from somas_action.core.errors import SomasError
from somas_action.core.names import validate_project_id
from somas_action.core.projection import parse_ts
from somas_action.core.report import next_action
from somas_action.state.store import ProjectStore, project_ids, projects_dir


def register(sub: Subparsers) -> None:
    """`somas list|health|monitor|verify`."""
    p = sub.add_parser(
        "list", help="projects with status, stage and age (runbook: failed projects)"
    )
    p.add_argument("--status", choices=[*names.PROJECT_STATUSES, "unreadable"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: list_projects(a.repo, a.status, a.json))

    p = sub.add_parser("health", help="full health check of one project (exit 0/1/2)")
    p.add_argument("project_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: health(a.repo, a.project_id, a.json))

    p = sub.add_parser("monitor", help="key metrics across all projects (exit 0/1/2)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--alert-issue",
        action="store_true",
        help="keep one somas:alert issue open while thresholds are crossed",
    )
    p.add_argument(
        "--from-state-branch",
        action="store_true",
        help="read the projects from the state branch (state.branch), the config from --repo",
    )
    p.set_defaults(func=lambda a: monitor(a.repo, a.json, a.alert_issue, a.from_state_branch))

    p = sub.add_parser("verify", help="schemas, hash chain and log/state agreement")
    p.add_argument("project_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: verify(a.repo, a.project_id, a.json))


def load_all(repo: Path) -> list[tuple[str, State | None, str | None]]:
    """(id, state, error) for every project; an unreadable one carries its one-line error."""
    rows: list[tuple[str, State | None, str | None]] = []
    for pid in project_ids(repo):
        store = ProjectStore(repo, pid)
        quick = store.peek()
        if quick is not None:
            rows.append((pid, quick, None))
            continue
        try:
            # Out of step, torn, unreadable: the full reading names the problem (the log's
            # length and last line, not all its bytes; health and status check those).
            state, _ = store.load(deep=False)
        except SomasError as exc:
            rows.append((pid, None, str(exc)))
        else:
            rows.append((pid, state, None))
    return rows


def _now() -> datetime:
    from somas_action.core.clock import SystemClock

    return SystemClock().now()


def _age(state: State, now: datetime) -> str:
    seconds = (now - parse_ts(state["created_at"])).total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def list_projects(repo: Path, status: str | None, as_json: bool) -> int:
    """One line per project; exit 1 if any is unreadable."""
    now = _now()
    rows: list[dict[str, Any]] = []
    for pid, state, error in load_all(repo):
        if state is None:
            rows.append({"project_id": pid, "status": "unreadable", "error": error})
            continue
        rows.append(
            {
                "project_id": pid,
                "issue_number": state["issue_number"],
                "status": state["status"],
                "current_stage": state["current_stage"],
                "age": _age(state, now),
                "created_at": state["created_at"],
                "updated_at": state["updated_at"],
                "dead_letters": state["dead_letter_count"],
            }
        )
    if status:
        rows = [r for r in rows if r["status"] == status]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        echo(f"no projects{f' with status {status}' if status else ''} in {projects_dir(repo)}")
    else:
        echo(f"{'PROJECT':<14} {'STATUS':<12} {'STAGE':<15} {'AGE':>6} {'DEAD':>4}  UPDATED")
        for r in rows:
            if r["status"] == "unreadable":
                echo(f"{r['project_id']:<14} UNREADABLE   {r['error']}")
            else:
                echo(
                    f"{r['project_id']:<14} {r['status']:<12} {r['current_stage']:<15} "
                    f"{r['age']:>6} {r['dead_letters']:>4}  {r['updated_at'][:16]}"
                )
    return 1 if any(r["status"] == "unreadable" for r in rows) else 0


def _config(repo: Path) -> Any:
    from somas_action.config.loader import load_config

    return load_config(repo)


def health(repo: Path, project_id: str, as_json: bool) -> int:
    """The runbook's full project health check; exit 0 healthy, 1 warning, 2 critical."""
    from somas_action.core.health import EXIT_CODES, escalation_line, project_findings, worst

    store = ProjectStore(repo, validate_project_id(project_id))
    state, changes = store.load()
    config = _config(repo)
    findings = project_findings(state, config, _now())
    level = worst(findings)
    recent = store.log.tail_lines(5)
    retries = {s: r["failures"] for s, r in state["stages"].items() if r["failures"]}
    escalation = escalation_line(findings, config)
    report: dict[str, Any] = {
        "project_id": project_id,
        "status": state["status"],
        "current_stage": state["current_stage"],
        "health": level,
        "dead_letters": state["dead_letter_count"],
        "retries": retries,
        "circuit_breakers": state["circuit_breakers"],
        "last_checkpoint": state["recovery_info"]["last_successful_checkpoint"],
        "recent_transitions": recent,
        "findings": [f.as_dict() for f in findings],
        "unrecorded_changes": [c.kind for c in changes],
        "escalation": escalation,
        "next": next_action(state),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return EXIT_CODES[level]
    echo(f"=== {project_id}: {state['status']} at {state['current_stage']} — {level.upper()}")
    echo(f"issue #{state['issue_number']}: {state['title'][:60]}")
    echo(
        f"dead letters: {state['dead_letter_count']}   last checkpoint: "
        f"{report['last_checkpoint'] or '-'}"
    )
    echo("retries: " + (", ".join(f"{s} {n}" for s, n in retries.items()) or "none"))
    breakers = state["circuit_breakers"]
    echo(
        "circuit breakers: "
        + (", ".join(f"{k} {v['state']}" for k, v in breakers.items()) or "none recorded")
    )
    echo("=== Recent transitions")
    for event in recent:
        stage = event["stage"] or "-"
        echo(
            f"  #{event['seq']:<5} {event['ts'][5:19]} {stage:<14} "
            f"{event['event_type']:<22} {event['status']}"[:79]
        )
    echo("=== Findings")
    for finding in findings:
        echo(f"  {finding.level.upper():<8} {finding.severity:<8} {finding.message}")
    if not findings:
        echo("  none")
    for change in changes:
        echo(f"  note: {change.note}")
    if escalation:
        echo(escalation)
    echo(f"next: {next_action(state)}")
    return EXIT_CODES[level]


def monitor(
    repo: Path, as_json: bool, alert_issue: bool = False, from_state_branch: bool = False
) -> int:
    """Key metrics across all projects; exit 0 ok, 1 warning, 2 critical.

    `from_state_branch`: the projects as the state branch holds them (what every run sees),
    judged by the checkout's config, which on the default branch holds the emergency stop.
    """
    if not from_state_branch:
        return _monitor(repo, repo, as_json, alert_issue)
    from somas_action.cli.commands.github import state_snapshot

    with tempfile.TemporaryDirectory(prefix="somas-state-") as tmp:
        return _monitor(repo, state_snapshot(repo, Path(tmp)), as_json, alert_issue)


def _monitor(repo: Path, state_root: Path, as_json: bool, alert_issue: bool) -> int:
    from somas_action.core.health import (
        CRITICAL,
        EXIT_CODES,
        escalation_line,
        project_findings,
        worst,
    )

    config = _config(repo)
    now = _now()
    findings = []
    unreadable = []
    counts: dict[str, int] = {}
    for pid, state, error in load_all(state_root):
        if state is None:
            unreadable.append({"project_id": pid, "error": error})
            continue
        counts[state["status"]] = counts.get(state["status"], 0) + 1
        findings += project_findings(state, config, now)
    level = worst(findings)
    if unreadable:
        level = CRITICAL
    if alert_issue:
        _alert(repo, config, level, findings, unreadable, escalation_line(findings, config))
    if as_json:
        print(
            json.dumps(
                {
                    "generated_at": now.isoformat(timespec="seconds"),
                    "projects": sum(counts.values()) + len(unreadable),
                    "by_status": counts,
                    "level": level,
                    "findings": [f.as_dict() for f in findings],
                    "unreadable": unreadable,
                    "escalation": escalation_line(findings, config),
                    "pipeline_enabled": config.enabled,
                },
                indent=2,
            )
        )
        return EXIT_CODES[level]
    total = sum(counts.values()) + len(unreadable)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    echo(
        f"{total} projects ({summary}) — {level.upper()}"
        f"{'' if config.enabled else ' — pipeline.enabled is false (emergency stop)'}"
    )
    for finding in findings:
        echo(f"{finding.level.upper():<8} {finding.project_id:<13} {finding.message}")
    for row in unreadable:
        echo(f"CRITICAL {row['project_id']:<13} unreadable: {row['error']}")
    line = escalation_line(findings, config)
    if line:
        echo(line)
    return EXIT_CODES[level]


def verify(repo: Path, project_id: str, as_json: bool) -> int:
    """Check a project's files; exit 1 naming the first problem of each kind."""
    from somas_action.state.verify import verify_project

    checks = verify_project(ProjectStore(repo, validate_project_id(project_id)))
    if as_json:
        print(json.dumps(checks, indent=2))
    else:
        for check in checks:
            echo(f"{'ok  ' if check['ok'] else 'FAIL'} {check['check']}: {check['detail']}")
    return 0 if all(c["ok"] for c in checks) else 1


def _alert(
    repo: Path,
    config: Any,
    level: str,
    findings: list[Any],
    unreadable: list[dict[str, Any]],
    escalation: str | None,
) -> None:
    """One alert issue: opened or updated while anything is found, closed when all is well."""
    from somas_action.app.compose import tracker_for
    from somas_action.core.clock import SystemClock
    from somas_action.core.untrusted import table_cell

    tracker = tracker_for(repo, config, SystemClock())
    if level == "ok":
        tracker.upsert_alert("SOMAS monitor", None)
        return
    # Findings quote titles and error messages: data, rendered as code in the table.
    rows = [
        f"| {f.level} | {f.severity} | `{f.project_id}` | {table_cell(f.message)} |"
        for f in findings
    ]
    rows += [
        f"| critical | critical | `{u['project_id']}` | {table_cell('unreadable: ' + u['error'])} |"
        for u in unreadable
    ]
    body = "\n".join(
        [
            f"`somas monitor` found **{level}** conditions ({len(rows)} finding(s)).",
            "",
            "| level | severity | project | finding |",
            "|---|---|---|---|",
            *rows,
            "",
            escalation or "",
            "",
            "This issue is updated by each monitor run and closed when nothing is found.",
        ]
    )
    tracker.upsert_alert(f"SOMAS monitor: {level} ({len(rows)} finding(s))", body)
