"""Recording a run's decisions: event drafts in, durable events out, then the mirror.

The runner and the steps it delegates to (resilience, the debugger, operator commands) all
record through one `Recorder`: it stamps contexts with the run's clock, commits drafts to the
project's store, reports each event, hands the batch to `on_commit` (state branch, git, Actions
output) and mirrors the new state onto the issue. They need nothing else from the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from somas_action.core import controls
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import Event, EventDraft, State
from somas_action.core.engine import Context
from somas_action.core.errors import StateError
from somas_action.core.labels import label_changes
from somas_action.core.ports import Tracker
from somas_action.core.report import status_markdown
from somas_action.pipeline.watch import Watch
from somas_action.state.git_locks import ClearedLock, take_cleared
from somas_action.state.store import ProjectStore, tail_of

EventSink = Callable[[Event], None]
# Called once per committed batch, before the tracker mirror (the GitHub flow commits the project
# folder to the state branch and posts event comments here).
BatchSink = Callable[[State, list[Event]], None]
# Drafts to append to a batch before it is committed, given the batch (the GitHub flow's
# notification outbox: the comments a batch owes the issue are recorded with it).
DraftHook = Callable[[list[EventDraft]], list[EventDraft]]
STATUS_MARKER = "somas:status"


def mirror_issue(tracker: Tracker, state: State) -> None:
    """Labels and the one status comment on the issue follow the state."""
    number = state["issue_number"]
    add, remove = label_changes(set(tracker.get_issue(number).labels), state)
    if add or remove:
        tracker.set_labels(number, add, remove)
    tracker.upsert_comment(number, STATUS_MARKER, status_markdown(state))


def _cleared_drafts(
    state: State, cleared: list[ClearedLock], recorder: Recorder
) -> list[EventDraft]:
    ctx = recorder.context("somas", f"git-lock:{state['last_event']['hash']}")
    return controls.git_locks_cleared(state, [(c.path, c.age_seconds) for c in cleared], ctx)


def _queued(store: ProjectStore) -> dict[str, str]:
    """Each queued dead letter's stage (none if the file cannot be read: nothing is settled)."""
    try:
        return {letter["id"]: letter["stage"] for letter in store.read_dead_letters()}
    except (StateError, KeyError):
        return {}


def _ignore_event(event: Event) -> None:
    return None


def _ignore_batch(state: State, written: list[Event]) -> None:
    return None


def _owe_nothing(drafts: list[EventDraft]) -> list[EventDraft]:
    return []


@dataclass
class Recorder:
    """Commits drafts for one run and tells everyone who listens."""

    clock: Clock
    tracker: Tracker
    on_event: EventSink = field(default=_ignore_event)
    on_commit: BatchSink = field(default=_ignore_batch)
    # The running pipeline's watch (pipeline.watch): told the new tail after each commit.
    watch: Watch | None = None
    owe: DraftHook = field(default=_owe_nothing)

    def context(self, actor: str, command_id: str) -> Context:
        """A command context stamped with the run's clock."""
        return Context(actor=actor, ts=format_ts(self.clock.now()), command_id=command_id)

    def step_context(self, actor: str, state: State) -> Context:
        """The context of the run's next step, keyed by the log position it was decided at."""
        return self.context(actor, f"advance:{state['metrics']['events']}")

    def commit(self, store: ProjectStore, state: State | None, drafts: list[EventDraft]) -> State:
        """Durably record drafts, then report, hand the batch to `on_commit`, and mirror.

        A batch that completes a stage with queued dead letters also settles them.
        """
        if state is not None and state["dead_letter_ids"]:
            drafts = controls.resolve_dead_letters(state, drafts, _queued(store))
        new_state, written = store.commit(state, [*drafts, *self.owe(drafts)])
        if self.watch is not None:
            tail = tail_of(new_state)
            self.watch.follow(store, tail.offset, tail.hash)
        for event in written:
            self.on_event(event)
        self.on_commit(new_state, written)
        cleared = take_cleared()
        if cleared:  # a killed git of ours had left a lock file: say so in the log
            new_state = self.commit(store, new_state, _cleared_drafts(new_state, cleared, self))
        mirror_issue(self.tracker, new_state)
        return new_state
