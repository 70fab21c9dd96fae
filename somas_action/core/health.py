"""Findings about a project's health: the runbook's "Key Metrics to Watch", as pure checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from somas_action.core import names
from somas_action.core.domain import State
from somas_action.core.errors import ConfigError
from somas_action.core.projection import parse_ts
from somas_action.core.settings import Config

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
    if state["status"] not in ACTIVE:
        return []
    found: list[Finding] = []
    for check in _CHECKS:
        found += check(state, config, now)
    return found


def _alert_limit(config: Config, value: float) -> float | None:
    """A configured alert threshold, when alerts are on."""
    return value if config.monitoring.alerts.enabled else None


def _duration(state: State, config: Config, now: datetime) -> list[Finding]:
    age = (now - parse_ts(state["created_at"])).total_seconds() / 3600
    thresholds = config.monitoring.alerts.thresholds
    return _graded(
        state["project_id"],
        "pipeline_duration_hours",
        round(age, 1),
        "h",
        "pipeline running for",
        _alert_limit(config, thresholds.pipeline_duration_hours),
    )


def _retries_and_stuck(state: State, config: Config, now: datetime) -> list[Finding]:
    pid, found = state["project_id"], []
    for stage in state["pipeline"]:
        record = state["stages"][stage]
        found += _graded(
            pid, "stage_retry_count", record["failures"], "", f"{stage} failed attempts"
        )
        started = record["started_at"]
        if record["status"] == names.STAGE_IN_PROGRESS and started:
            found += _stuck(pid, stage, started, config, now)
    return found


def _dead_letters(state: State, config: Config, now: datetime) -> list[Finding]:
    return _graded(
        state["project_id"], "dead_letter_count", state["dead_letter_count"], "", "dead letters"
    )


def _human_wait(state: State, config: Config, now: datetime) -> list[Finding]:
    gate = state["human_gate"]
    if state["status"] != names.WAITING or not gate or gate["status"] != names.GATE_WAITING:
        return []
    waited = (now - parse_ts(gate["opened_at"])).total_seconds() / 3600
    return _graded(
        state["project_id"],
        "human_wait_hours",
        round(waited, 1),
        "h",
        f"{gate['stage']} gate waiting for a person",
        _alert_limit(config, config.monitoring.alerts.thresholds.human_wait_time_hours),
    )


def _error_rate(state: State, config: Config, now: datetime) -> list[Finding]:
    attempts = state["metrics"]["attempts"]
    limit = _alert_limit(config, config.monitoring.alerts.thresholds.error_rate_percent)
    if limit is None or not attempts:
        return []
    rate = round(100 * state["metrics"]["failed_attempts"] / attempts, 1)
    if rate <= limit:
        return []
    message = f"error rate {rate:g}% of {attempts} attempts (> {limit:g}%)"
    return [
        Finding(state["project_id"], "error_rate_percent", WARNING, "medium", rate, limit, message)
    ]


def _needs_a_person(state: State, config: Config, now: datetime) -> list[Finding]:
    pid, stage = state["project_id"], state["current_stage"]
    if state["status"] == names.PARKED:
        parked = state["recovery_info"].get("parked")
        reason = parked["reason"] if parked else None
        message = f"parked at {stage}: {reason}"
        return [Finding(pid, "project_parked", WARNING, "medium", 1, 0, message)]
    if state["status"] == names.FAILED:
        message = f"failed at {stage}; needs a person"
        return [Finding(pid, "project_failed", WARNING, "high", 1, 0, message)]
    return []


def _open_breakers(state: State, config: Config, now: datetime) -> list[Finding]:
    return [
        Finding(
            state["project_id"],
            "circuit_breaker_open",
            WARNING,
            "high",
            1,
            0,
            f"circuit breaker {service} is open",
        )
        for service, breaker in sorted(state["circuit_breakers"].items())
        if breaker["state"] == names.BREAKER_OPEN
    ]


Check = Callable[[State, Config, datetime], list[Finding]]
_CHECKS: tuple[Check, ...] = (
    _duration,
    _retries_and_stuck,
    _dead_letters,
    _human_wait,
    _error_rate,
    _needs_a_person,
    _open_breakers,
)


def _stuck(pid: str, stage: str, started_at: str, config: Config, now: datetime) -> list[Finding]:
    try:
        timeout = config.stage(stage).timeout_minutes
    except ConfigError:  # a stage no longer configured: the state still names it
        return []
    minutes = (now - parse_ts(started_at)).total_seconds() / 60
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
    rule = config.escalation.severities[top]
    contact = config.escalation.contact
    who = contact or "no escalation.contact configured"
    if top != "critical":
        return f"escalation {top}: respond within {rule.response_minutes:g} min — {rule.actions}"
    return (
        f"escalation critical: respond within {rule.response_minutes:g} min — "
        f"{rule.actions}; contact: {who}"
    )
