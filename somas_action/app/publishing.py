"""The end of a GitHub run: say what the issue is owed, record it, push; or pause if it is gone.

The state is on the state branch before this runs (the flow pushed it). The outbox says the owed
comments; the record of what was said is committed and pushed too. An issue that is gone
(deleted, transferred), as the outbox or the mirror found, pauses the project with the reason:
not parked, because a parked project re-runs its stage on the next advance and a gate that
waits would lose its waiting; a finished project is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from somas_action.core import names
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import EventDraft, State
from somas_action.core.errors import IssueGone
from somas_action.github.mirror_buffer import MirrorBuffer
from somas_action.pipeline.operator import Operator
from somas_action.pipeline.outbox import Outbox
from somas_action.pipeline.runner import Runner
from somas_action.state.state_branch import StateBranch, StateConflict

PAUSABLE = (names.PENDING, names.IN_PROGRESS, names.WAITING, names.PARKED, names.FAILED)
ISSUE_GONE_ACTOR = "somas (github: the issue is gone)"


@dataclass
class Publisher:
    """What one run says at its end, and what it does when the issue is gone."""

    runner: Runner
    outbox: Outbox
    buffer: MirrorBuffer
    branch: StateBranch
    clock: Clock
    say: Callable[[str], None]

    def publish(self, state: State) -> State:
        """Say what the issue is owed (the state is pushed), record it, and push that too.

        A comment that fails stays owed for a later run; an issue that is gone pauses the
        project, so that no decision is lost and no agent runs for nothing.
        """
        store = self.runner.store(state["project_id"])

        def commit(current: State, drafts: list[EventDraft]) -> State:
            return self.runner.commit(store, current, drafts)

        self.outbox.deliver(state)
        state = self.outbox.settle(state, format_ts(self.clock.now()), commit)
        gone = self.outbox.gone or self.buffer.gone
        if gone is not None:
            state = self.issue_gone(state, gone)
        try:
            self.branch.push()
        except StateConflict as exc:
            # Said already; the record of it is kept locally and the next run finds the comments
            # by their markers, so nothing is said twice.
            self.say(f"somas: {exc}")
        return state

    def issue_gone(self, state: State, gone: IssueGone) -> State:
        """Pause a project whose issue left: its log keeps every decision; a person decides."""
        self.buffer.gone = gone
        self.buffer.discard()
        pid = state["project_id"]
        self.say(f"somas: {pid}: {gone}")
        if state["status"] not in PAUSABLE:
            return state
        reason = (
            f"{gone}; every decision so far is kept on {self.branch.branch}. `somas unpause "
            f"{pid}` once the issue is back, or `somas cancel {pid}`"
        )
        key = f"issue-gone:{state['last_event']['hash'][:16]}"
        return Operator(self.runner).pause(pid, ISSUE_GONE_ACTOR, reason, delivery_id=key)
