"""Mirror the repository's breakers into projects' `state.json`, through their event logs.

`state.json` stays a pure projection: a breaker change reaches a project only as a
`circuit_breaker_*` event in its `transitions.jsonl`. Operator actions (reset, trip) are
mirrored into every active project at once; changes made by other runs are picked up by
`sync_changes` the next time a run advances the project.
"""

from __future__ import annotations

from pathlib import Path

from somas_action.core import names
from somas_action.core.breaker import Transition, new_record, view
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import BreakerView, State
from somas_action.core.engine import Context
from somas_action.core.errors import LogMoved, SomasError
from somas_action.core.events import EventType
from somas_action.core.resilience_events import breaker_drafts
from somas_action.state.breakers import BreakerStore
from somas_action.state.store import ProjectStore, project_ids


def sync_changes(repo: Path, state: State) -> dict[str, tuple[EventType, BreakerView]]:
    """service -> (event type, view) for every breaker whose mirror in `state` is stale."""
    changes: dict[str, tuple[EventType, BreakerView]] = {}
    never_changed = view(new_record())  # counting failures alone is not a change of state
    for service, record in BreakerStore(repo).read().items():
        current = view(record)
        if state["circuit_breakers"].get(service, never_changed) != current:
            changes[service] = (EventType.CIRCUIT_BREAKER_SYNCED, current)
    return changes


def mirror_into_projects(repo: Path, transition: Transition, clock: Clock, actor: str) -> list[str]:
    """Record an operator's breaker change in every active project; returns their ids.

    A project that is completed or cancelled, unreadable, or has an unrecorded hand edit of
    `state.json` is skipped: the edit must be recorded first, and the next run syncs it.
    """
    mirrored = []
    for project_id in project_ids(repo):
        store = ProjectStore(repo, project_id)
        try:
            state, edit = store.load()
        except SomasError:
            continue
        if edit or state["status"] in names.TERMINAL_STATUSES:
            continue
        if state["circuit_breakers"].get(transition.service) == transition.view:
            continue
        # Tied to the project's position in its log: two operator changes within the same
        # millisecond still get distinct event ids.
        command_id = f"breaker:{transition.service}:{state['last_event']['hash'][:16]}"
        ctx = Context(actor=actor, ts=format_ts(clock.now()), command_id=command_id)
        changes = {transition.service: (transition.event_type, transition.view)}
        try:
            store.commit(state, breaker_drafts(state, changes, ctx))
        except LogMoved:
            continue  # another writer got there first: the project's next run syncs it
        mirrored.append(project_id)
    return mirrored
