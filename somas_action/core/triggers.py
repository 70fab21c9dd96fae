"""GitHub events -> SOMAS commands: which event means what, decided from the payload alone.

No I/O here: `from_event` reads the payload GitHub Actions wrote and returns a `Trigger` to
authorize and run, an `Ignored` (not for us, or from a bot), or a `Malformed` comment to refuse
with the grammar. Every value taken from the payload is checked before it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from somas_action.core import names
from somas_action.core.domain import JsonObject
from somas_action.core.names import AGENT_NAME_RE, CHECKPOINT_ID_RE, validate_project_id
from somas_action.core.slash import GrammarError, parse

# Verbs that may be followed by `advance` in the same run (the pipeline can move on).
ADVANCING = frozenset(
    {"start", "approve", "reject", "retry", "restart", "resume", "unpause", "agent_apply"}
)


@dataclass(frozen=True)
class Trigger:
    """One command to run for a project, and who asked for it."""

    verb: str
    project_id: str
    issue_number: int
    actor: str
    # The idempotency key; "" lets the runner derive its own.
    delivery_id: str
    args: dict[str, str] = field(default_factory=dict)
    login: str = ""
    comment_id: int | None = None
    issue: JsonObject | None = None


@dataclass(frozen=True)
class Ignored:
    """An event SOMAS does nothing about, and why (printed, never posted)."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """A `/somas` comment that breaks the grammar: refused with a reply, state untouched."""

    reason: str
    issue_number: int
    comment_id: int
    login: str
    issue: JsonObject | None = None


Outcome = Trigger | Ignored | Malformed


class PayloadError(ValueError):
    """The event payload lacks a field we need; the message names it."""


def is_bot(user: Mapping[str, Any] | None, bot_logins: tuple[str, ...] = ()) -> bool:
    """A GitHub App, the Actions bot, or a configured machine account."""
    if not user:
        return True
    login = str(user.get("login") or "")
    return user.get("type") == "Bot" or login.endswith("[bot]") or login in bot_logins


def from_event(
    event_name: str,
    payload: Mapping[str, Any],
    *,
    bot_logins: tuple[str, ...] = (),
    run_id: str = "",
) -> Outcome:
    """What an event asks of SOMAS."""
    if event_name == "issues":
        return _issues(payload, bot_logins)
    if event_name == "issue_comment":
        return _comment(payload, bot_logins)
    if event_name == "workflow_dispatch":
        return _dispatch(payload, run_id)
    return Ignored(f"event {event_name!r} is not one SOMAS handles")


def _issues(payload: Mapping[str, Any], bot_logins: tuple[str, ...]) -> Outcome:
    action = payload.get("action")
    label = (payload.get("label") or {}).get("name")
    if action != "labeled" or label != names.PROJECT_LABEL:
        return Ignored(f"issues.{action} with label {label!r}: only {names.PROJECT_LABEL} starts")
    sender = payload.get("sender")
    if is_bot(sender, bot_logins):
        return Ignored("label added by a bot (SOMAS's own label writes never start anything)")
    issue = _issue(payload)
    number = int(issue["number"])
    login = str((sender or {}).get("login"))
    return Trigger(
        verb="start",
        project_id=names.project_id_for(number),
        issue_number=number,
        actor=f"github:{login}",
        # A redelivered label event is the same start: the project's own start is idempotent.
        delivery_id=f"start:{number}",
        login=login,
        issue=dict(issue),
    )


def _comment(payload: Mapping[str, Any], bot_logins: tuple[str, ...]) -> Outcome:
    if payload.get("action") != "created":
        return Ignored(f"issue_comment.{payload.get('action')}: only new comments are commands")
    comment = payload.get("comment") or {}
    sender = payload.get("sender") or comment.get("user")
    if is_bot(sender, bot_logins) or is_bot(comment.get("user"), bot_logins):
        return Ignored("comment by a bot: never a command")
    issue = _issue(payload)
    number = int(issue["number"])
    comment_id = comment.get("id")
    if not isinstance(comment_id, int):
        raise PayloadError("comment.id: missing or not a number")
    login = str((sender or {}).get("login"))
    try:
        command = parse(str(comment.get("body") or ""))
    except GrammarError as exc:
        return Malformed(str(exc), number, comment_id, login, dict(issue))
    if command is None:
        return Ignored("comment is conversation, not a /somas command")
    if issue.get("pull_request"):
        return Malformed(
            "commands go on the project's issue, not on its pull request", number, comment_id, login
        )
    return Trigger(
        verb=command.verb,
        project_id=names.project_id_for(number),
        issue_number=number,
        actor=f"github:{login}",
        delivery_id=f"comment:{comment_id}",
        args=command.args,
        login=login,
        comment_id=comment_id,
        issue=dict(issue),
    )


def _dispatch(payload: Mapping[str, Any], run_id: str) -> Outcome:
    inputs = {k: str(v).strip() for k, v in (payload.get("inputs") or {}).items() if v is not None}
    sender = payload.get("sender") or {}
    login = str(sender.get("login") or "unknown")
    actor = f"github:{login}"
    delivery = f"dispatch:{run_id}" if run_id else ""
    if inputs.get("issue_number"):
        number = _issue_number(inputs["issue_number"])
        return Trigger(
            "start",
            names.project_id_for(number),
            number,
            actor,
            f"start:{number}",
            login=login,
        )
    project_id = inputs.get("project_id", "")
    if not project_id:
        raise PayloadError(
            "inputs: give issue_number (fresh start), project_id + start_stage (restart) or "
            "project_id + checkpoint_id (resume)"
        )
    validate_project_id(project_id)
    number = int(project_id.split("-", 1)[1])
    if inputs.get("agent"):
        # somas-agent.yml's apply job: the reply made by its read-only job is applied.
        agent, stage = inputs["agent"], inputs.get("stage", "")
        if not AGENT_NAME_RE.match(agent):
            raise PayloadError(f"inputs.agent: {agent!r} is not an agent name")
        if not names.STAGE_NAME_RE.match(stage):
            raise PayloadError(f"inputs.stage: {stage!r} is not a stage name")
        args = {"agent": agent, "stage": stage}
        return Trigger("agent_apply", project_id, number, actor, delivery, args, login=login)
    if inputs.get("start_stage"):
        stage = inputs["start_stage"]
        if not names.STAGE_NAME_RE.match(stage):
            raise PayloadError(f"inputs.start_stage: {stage!r} is not a stage name")
        return Trigger(
            "restart", project_id, number, actor, delivery, {"stage": stage}, login=login
        )
    checkpoint = inputs.get("checkpoint_id", "")
    if checkpoint and not CHECKPOINT_ID_RE.match(checkpoint):
        raise PayloadError(f"inputs.checkpoint_id: {checkpoint!r} is not a checkpoint id")
    hop = inputs.get("hop", "0") or "0"
    if not _ascii_digits(hop) or len(hop) > 3:
        raise PayloadError(f"inputs.hop: {hop!r} is not a continuation count")
    args = {"checkpoint": checkpoint} if checkpoint else {}
    args["hop"] = str(int(hop))
    return Trigger("resume", project_id, number, actor, delivery, args, login=login)


def _issue(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    issue = payload.get("issue")
    if not isinstance(issue, Mapping) or not isinstance(issue.get("number"), int):
        raise PayloadError("issue.number: missing or not a number")
    if issue["number"] < 1:
        raise PayloadError(f"issue.number: {issue['number']} is not an issue number")
    return issue


def _ascii_digits(value: str) -> bool:
    # str.isdigit() is true for "²" (int() refuses it) and for Arabic-Indic digits (int() reads
    # them as another number): only ASCII digits are issue numbers.
    return value.isascii() and value.isdigit()


def _issue_number(value: str) -> int:
    if not _ascii_digits(value) or len(value) > 10 or int(value) < 1:
        raise PayloadError(f"inputs.issue_number: {value!r} is not an issue number (1 or more)")
    return int(value)
