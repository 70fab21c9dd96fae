"""Opening a project for a command that writes: check, repair, record what changed outside.

`open_project` is what `Runner.load` does. It reads the project (state.json checked against
the log, see `state.logcheck`), refuses a state.json that is an old copy, makes the repairs
that need no event (a torn tail cut aside, a lagging state.json rewritten) under the project's
lock, and records every change made to the files by hand as an event of its own before the
command decides anything: a hand edit of state.json, dead letters emptied by hand, lines
appended to the log by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from somas_action.core import controls, engine
from somas_action.core.domain import EventDraft, State, StateEdit
from somas_action.core.errors import CommandRefused, LogMoved
from somas_action.pipeline.recorder import Recorder
from somas_action.state.store import (
    Finding,
    HandAppended,
    HandEdit,
    LettersPurged,
    ProjectStore,
    StaleCopy,
)

# Re-reads after a conflict with another writer (each one means someone else recorded).
LOAD_TRIES = 20
T = TypeVar("T")


def retry_on_conflict(command: Callable[[], T], tries: int = LOAD_TRIES) -> T:
    """Run a command that loads, decides and records; when another writer got there first
    (LogMoved), run it again on what is recorded now."""
    for _ in range(tries - 1):
        try:
            return command()
        except LogMoved:
            continue
    return command()


def open_project(recorder: Recorder, store: ProjectStore, actor: str) -> State:
    """The project's state, repaired and with every outside change recorded (see module)."""
    for _ in range(LOAD_TRIES):
        reading = store.read()
        stale = next((f for f in reading.findings if isinstance(f, StaleCopy)), None)
        if stale is not None:
            raise CommandRefused(stale.refusal)
        try:
            state = store.settle(reading)
            for finding in reading.findings:
                state = _record(recorder, store, state, finding, actor)
            return state
        except LogMoved:
            continue
    raise LogMoved(
        f"{store.log.path}: other writers kept changing the project while it was opened; "
        "run the command again"
    )


def _record(
    recorder: Recorder,
    store: ProjectStore,
    state: State,
    finding: Finding,
    actor: str,
) -> State:
    """Record one outside change as an event (repairs and refusals are handled before)."""
    key = f"{finding.kind}:{state['last_event']['hash']}"
    drafts: list[EventDraft]
    if isinstance(finding, HandEdit):
        if not (finding.edit["changes"] or finding.edit["ignored"]):
            return state
        ctx = recorder.context("operator (hand edit of state.json)", key)
        edit: StateEdit = {**finding.edit, "detected_by": actor}
        drafts = _hand_edit_drafts(state, edit, ctx)
    elif isinstance(finding, LettersPurged):
        ctx = recorder.context("operator (edited dead_letters.json by hand)", key)
        drafts = controls.purge_dead_letters(state, list(finding.ids), None, True, ctx)
    elif isinstance(finding, HandAppended):
        if not finding.lines:
            return state
        ctx = recorder.context("operator (appended to transitions.jsonl by hand)", key)
        drafts = controls.hand_note(state, [_note_text(line) for line in finding.lines], ctx)
    else:
        return state
    return recorder.commit(store, state, drafts)


def _hand_edit_drafts(state: State, edit: StateEdit, ctx: engine.Context) -> list[EventDraft]:
    """A hand edit that restarts a stage becomes that restart (attempts reset, gates kept);
    any other edit is recorded as it is."""
    target = controls.restart_by_hand(state, edit)
    if target is None:
        return engine.record_state_edit(state, edit, ctx)
    try:
        return controls.restart(state, target, "hand edit of state.json", None, ctx, edit=edit)
    except CommandRefused as refused:
        raise CommandRefused(
            f".somas/projects/{state['project_id']}/state.json was edited to restart at "
            f"{target}: {refused}"
        ) from None


def _note_text(line: str) -> str:
    """The words of a hand-appended line: a JSON object's text-like field, else the line."""
    try:
        value = json.loads(line)
    except ValueError:
        return line
    if isinstance(value, dict):
        for key in ("resolution", "text", "note", "message", "description", "summary"):
            if isinstance(value.get(key), str) and value[key].strip():
                return str(value[key])
    return line
