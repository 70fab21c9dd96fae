"""Findings about a project's health: the runbook's "Key Metrics to Watch", as pure checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from somas_action.config.loader import Config
from somas_action.core import names
from somas_action.core.errors import ConfigError
from somas_action.core.projection import State, parse_ts

OK, WARNING, CRITICAL = "ok", "warning", "critical"
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2}

# The runbook's table: metric -> (warning above, critical above).
RUNBOOK_LEVELS: dict[str, tuple[float, float]] = {
    "pipeline_duration_hours": (24, 72),
    "stage_retry_count": (2, 3),
    "dead_letter_count": (5, 10),
    "human_wait_hours": (24, 48),
}
# How a finding's level maps onto the runbook's escalation severities.
SEVERITY_BY_LEVEL = {WARNING: "medium", CRITICAL: "critical"}
ACTIVE = (names.PENDING, names.IN_PROGRESS, names.WAITING, names.PAUSED, names.FAILED, names.PARKED)


@dataclass(frozen=True)
class Finding:
    """One thing worth a person's attention."""

    project_id: str
    metric: str
    level: str
    severity: str
    value: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of a finding."""
        return asdict(self)


def worst(findings: list[Finding]) -> str:
    """The highest level among findings (`ok` when there are none)."""
    levels = {f.level for f in findings}
    return CRITICAL if CRITICAL in levels else WARNING if WARNING in levels else OK


def _graded(
    pid: str, metric: str, value: float, unit: str, what: str, alert: float | None = None
) -> list[Finding]:
    warn, crit = RUNBOOK_LEVELS[metric]
    if alert is not None and value > alert and value <= crit:
        crit = alert  # the team's configured alert threshold is stricter than the runbook's
    for level, limit in ((CRITICAL, crit), (WARNING, warn)):
        if value > limit:
            message = f"{what}: {value:g}{unit} (> {limit:g}{unit})"
            return [Finding(pid, metric, level, SEVERITY_BY_LEVEL[level], value, limit, message)]
    return []


def project_findings(state: State, config: Config, now: datetime) -> list[Finding]:
    """Every finding for one project at time `now`."""
    pid, status = state["project_id"], state["status"]
    if status not in ACTIVE:
        return []
    thresholds = config.raw["monitoring"]["alerts"]["thresholds"]
    alerts_on = config.raw["monitoring"]["alerts"]["enabled"]
    found: list[Finding] = []
    age = (now - parse_ts(state["created_at"])).total_seconds() / 3600
    found += _graded(
        pid,
        "pipeline_duration_hours",
        round(age, 1),
        "h",
        "pipeline running for",
        thresholds["pipeline_duration_hours"] if alerts_on else None,
    )
    for stage in state["pipeline"]:
        record = state["stages"][stage]
        found += _graded(
            pid, "stage_retry_count", record["failures"], "", f"{stage} failed attempts"
        )
        if record["status"] == names.STAGE_IN_PROGRESS and record["started_at"]:
            found += _stuck(pid, stage, record, config, now)
    found += _graded(pid, "dead_letter_count", state["dead_letter_count"], "", "dead letters")
    gate = state.get("human_gate")
    if status == names.WAITING and gate and gate.get("status") == "waiting":
        waited = (now - parse_ts(gate["opened_at"])).total_seconds() / 3600
        found += _graded(
            pid,
            "human_wait_hours",
            round(waited, 1),
            "h",
            f"{gate['stage']} gate waiting for a person",
            thresholds["human_wait_time_hours"] if alerts_on else None,
        )
    attempts = state["metrics"]["attempts"]
    if alerts_on and attempts:
        rate = round(100 * state["metrics"]["failed_attempts"] / attempts, 1)
        if rate > thresholds["error_rate_percent"]:
            limit = thresholds["error_rate_percent"]
            found.append(
                Finding(
                    pid,
                    "error_rate_percent",
                    WARNING,
                    "medium",
                    rate,
                    limit,
                    f"error rate {rate:g}% of {attempts} attempts (> {limit:g}%)",
                )
            )
    if status == names.PARKED:
        parked = state["recovery_info"].get("parked") or {}
        found.append(
            Finding(
                pid,
                "project_parked",
                WARNING,
                "medium",
                1,
                0,
                f"parked at {state['current_stage']}: {parked.get('reason')}",
            )
        )
    if status == names.FAILED:
        found.append(
            Finding(
                pid,
                "project_failed",
                WARNING,
                "high",
                1,
                0,
                f"failed at {state['current_stage']}; needs a person",
            )
        )
    for service, breaker in sorted((state.get("circuit_breakers") or {}).items()):
        if isinstance(breaker, dict) and breaker.get("state") == "open":
            found.append(
                Finding(
                    pid,
                    "circuit_breaker_open",
                    WARNING,
                    "high",
                    1,
                    0,
                    f"circuit breaker {service} is open",
                )
            )
    return found


def _stuck(
    pid: str, stage: str, record: dict[str, Any], config: Config, now: datetime
) -> list[Finding]:
    try:
        timeout = config.stage(stage).timeout_minutes
    except ConfigError:  # a stage no longer configured: the state still names it
        return []
    minutes = (now - parse_ts(record["started_at"])).total_seconds() / 60
    if minutes <= timeout:
        return []
    return [
        Finding(
            pid,
            "stuck_stage",
            CRITICAL,
            "high",
            round(minutes, 1),
            timeout,
            f"{stage} in_progress for {minutes:.0f} min (timeout {timeout:g} min)",
        )
    ]


def escalation_line(findings: list[Finding], config: Config) -> str | None:
    """Who to call and how fast, for the worst severity found (None if nothing to escalate)."""
    order = ["low", "medium", "high", "critical"]
    severities = [f.severity for f in findings]
    if not severities:
        return None
    top = max(severities, key=order.index)
    rule = config.raw["escalation"]["severities"][top]
    contact = config.raw["escalation"]["contact"]
    who = contact or "no escalation.contact configured"
    if top != "critical":
        return (
            f"escalation {top}: respond within {rule['response_minutes']:g} min — {rule['actions']}"
        )
    return (
        f"escalation critical: respond within {rule['response_minutes']:g} min — "
        f"{rule['actions']}; contact: {who}"
    )
