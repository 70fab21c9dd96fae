"""Authorize a GitHub trigger before it acts, and answer a refusal as the policy allows.

Every trigger (a label's sender, a comment's author, a dispatch's actor) is checked against
GitHub's collaborator-permission API; the decision itself is `core.access.decide`. The first,
read-only job of the pipeline workflow (`somas authorize-event`) and the queued job
(`somas handle-event`) both go through `Gatekeeper.check`, so they cannot disagree on policy.

Answers: a collaborator whose role is too low gets 😕 and a reply naming the role needed; an
outsider (no role above read) gets at most one neutral reaction (`security.outsider_reaction`)
and never a reply, so strangers cannot make SOMAS write on the issue.
"""

from __future__ import annotations

from typing import Protocol

from somas_action.core.access import (
    Access,
    AccessPolicy,
    Decision,
    decide,
    trusted_dispatcher,
)
from somas_action.core.names import PROJECT_LABEL
from somas_action.core.triggers import Trigger
from somas_action.core.untrusted import mention

REFUSED = "confused"


class AccessHost(Protocol):
    """What the gatekeeper needs of the forge: roles, reactions, replies."""

    def access(self, login: str) -> Access:
        """The account's role and base permission on the repository."""

    def react(self, comment_id: int, content: str) -> None:
        """Put a reaction on an issue comment."""

    def reply(self, number: int, marker: str, body: str) -> None:
        """Answer on the issue once per marker."""


def reply_marker(comment_id: int) -> str:
    """The marker of our answer to one command comment."""
    return f"somas:reply:{comment_id}"


def describe(trigger: Trigger) -> str:
    """What the trigger asks for, as a refusal names it."""
    if trigger.comment_id is not None:
        return f"`/somas {trigger.verb}`"
    if is_dispatch(trigger):
        return f"a dispatch ({trigger.verb})"
    return f"the {PROJECT_LABEL} label"


def is_dispatch(trigger: Trigger) -> bool:
    """A workflow dispatch: no comment, and no issue in the payload (labels carry theirs)."""
    return trigger.comment_id is None and not trigger.issue


class Gatekeeper:
    """Checks who asked, and answers refusals on the issue."""

    def __init__(self, host: AccessHost, policy: AccessPolicy) -> None:
        self.host = host
        self.policy = policy

    def check_login(self, login: str, what: str, dispatch: bool = False) -> Decision:
        """May `login` do `what`? Dispatches by the workflow token need no API call."""
        access = (trusted_dispatcher(login) if dispatch else None) or self.host.access(login)
        return decide(access, self.policy, what)

    def check(self, trigger: Trigger) -> Decision:
        """The decision for one trigger (one permission request at most per login and run)."""
        return self.check_login(trigger.login, describe(trigger), is_dispatch(trigger))

    def answer(self, decision: Decision, number: int, comment_id: int | None, text: str) -> None:
        """Answer a refused comment: a reply for collaborators, one reaction for outsiders."""
        if comment_id is None:
            return  # a label or a dispatch has nothing to react to; the run's log says why
        if not decision.answer_in_public:
            if self.policy.outsider_reaction:
                self.host.react(comment_id, self.policy.outsider_reaction)
            return
        self.host.react(comment_id, REFUSED)
        self.reply(number, comment_id, decision.access.login, text)

    def reply(self, number: int, comment_id: int, login: str, text: str) -> None:
        """`@login text` as our one answer to a comment."""
        self.host.reply(number, reply_marker(comment_id), f"{mention(login)} {text}")

    def answer_only(self, trigger: Trigger) -> str:
        """Answer a refused trigger and run nothing; one line for the log.

        For the workflow job outside the project's queue: a trigger allowed by now (the role
        changed between the jobs) is not run here, where it would skip the queue.
        """
        decision = self.check(trigger)
        if decision.allowed:
            return f"not run here ({decision.reason} now): give the command again"
        self.refuse(decision, trigger)
        return f"refused: {decision.reason}"

    def refuse(self, decision: Decision, trigger: Trigger) -> None:
        """Answer a trigger refused for its author's role."""
        self.answer(
            decision, trigger.issue_number, trigger.comment_id, f"refused: {decision.reason}"
        )
