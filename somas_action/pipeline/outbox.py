"""Saying what a project owes its issue, once its state is pushed, and recording that it was said.

The owed notices are in the state (`core.outbox`). `deliver` posts them through the tracker;
a comment that fails stays owed (a later run says it), so a failed comment never aborts a run
and never makes anyone repeat agent work. `settle` records what was said as
`notification_sent` events; until then a retried run finds each comment by its marker and posts
nothing twice. An issue that was deleted or transferred stops delivery and is reported in
`gone`: the caller decides what becomes of the project.
"""

from __future__ import annotations

from collections.abc import Callable

from somas_action.core import names
from somas_action.core.domain import EventDraft, State
from somas_action.core.error_kinds import CIRCUIT_OPEN
from somas_action.core.errors import ClassifiedError, IssueGone, SomasError
from somas_action.core.outbox import (
    STAGE_COMPLETED,
    Outgoing,
    comments_for,
    pending,
    settled_drafts,
)
from somas_action.core.ports import Tracker
from somas_action.github.api import RateLimitDeferred
from somas_action.pipeline.notifications import comment_body

# Commits drafts for the project being published (its store is bound in).
Committer = Callable[[State, list[EventDraft]], State]
_FINISHED = (names.COMPLETED, names.CANCELLED)


class Outbox:
    """The comments one run says on one repository's issues."""

    def __init__(self, tracker: Tracker, one_per_stage: bool, say: Callable[[str], None]) -> None:
        self.tracker = tracker
        self.one_per_stage = one_per_stage
        self.say = say
        self.gone: IssueGone | None = None
        # Said in this run, not yet recorded: marker -> comment.
        self._said: dict[str, Outgoing] = {}

    def deliver(self, state: State, *, stages_only: bool = False) -> int:
        """Post what the issue is owed (only stage completions with `stages_only`); returns how
        many comments were said. The caller has pushed the state that owes them."""
        said = 0
        for comment in comments_for(pending(state), self.one_per_stage):
            if comment.marker in self._said or self.gone is not None:
                continue
            if stages_only and comment.notices[0]["kind"] != STAGE_COMPLETED:
                continue
            failure = self._post(state, comment)
            if failure is None:
                self._said[comment.marker] = comment
                said += 1
            elif _stops_delivery(failure):
                break
        return said

    def _post(self, state: State, comment: Outgoing) -> SomasError | None:
        """Say one comment; the error when it could not be said (it stays owed)."""
        body = comment_body(state["project_id"], comment)
        try:
            self.tracker.upsert_comment(state["issue_number"], comment.marker, body)
        except IssueGone as exc:
            self.gone = exc
            return exc
        except SomasError as exc:
            self.say(
                f"somas: {state['project_id']}: could not comment on issue "
                f"#{state['issue_number']} ({exc}); it stays owed and a later run says it"
            )
            return exc
        return None

    def settle(self, state: State, ts: str, commit: Committer) -> State:
        """Record what this run said; for a finished project whose issue is gone, also what
        can never be said. Returns the state after the record (unchanged when nothing to say)."""
        drafts: list[EventDraft] = []
        for comment in self._said.values():
            drafts += settled_drafts(state, comment, ts)
        self._said.clear()
        if self.gone is not None and state["status"] in _FINISHED:
            said = {notice for draft in drafts for notice in draft["data"]["notices"]}
            left = [n for n in pending(state) if n["id"] not in said]
            for comment in comments_for(left, self.one_per_stage):
                drafts += settled_drafts(state, comment, ts, reason=str(self.gone))
        return commit(state, drafts) if drafts else state


def _stops_delivery(exc: SomasError) -> bool:
    """A gone issue, a rate limit or an open breaker refuses every later comment of this run."""
    if isinstance(exc, IssueGone | RateLimitDeferred):
        return True
    return isinstance(exc, ClassifiedError) and exc.kind == CIRCUIT_OPEN
