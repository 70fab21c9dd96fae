"""`somas verify`: every file of a project against its schema, the chain, and each other."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TypedDict

from somas_action.config.schemas import problems
from somas_action.core import names
from somas_action.core.domain import DeadLetter, Event, State
from somas_action.core.errors import StateError
from somas_action.core.events import EventType
from somas_action.core.projection import fold_one, render, stamp_log
from somas_action.state.artifacts import check_digests
from somas_action.state.eventlog import LogScan, gc_paused
from somas_action.state.jsonio import json_problem
from somas_action.state.store import ProjectStore, legacy_text


class Check(TypedDict):
    """One check of `somas verify`: what was checked, whether it held, and the first problem."""

    check: str
    ok: bool
    detail: str


def _check(name: str, ok: bool, detail: str) -> Check:
    return {"check": name, "ok": ok, "detail": detail}


_ARTIFACT_EVENTS = (EventType.ARTIFACTS_WRITTEN, EventType.DEBUGGER_FIX_COMMITTED)


def verify_project(store: ProjectStore) -> list[Check]:
    """Run every check; each result names the first bad line or field it found. Read-only."""
    if not store.log.path.is_file():
        raise StateError(f"{store.log.path}: no log; `somas list` shows the projects")
    checks = []
    scan = store.log.scan()
    state: State | None = None
    letters: dict[str, DeadLetter] = {}
    # Only these events record artifact digests: kept while streaming, the rest is folded away.
    artifact_events: list[Event] = []
    bad: tuple[int, str] | None = None
    try:
        with gc_paused():
            for batch in scan:
                for event in batch:
                    state = fold_one(state, event)
                    if bad is None:
                        found = problems("event", event)[:1]
                        bad = (event["seq"], found[0]) if found else None
                    if event["event_type"] == EventType.DEAD_LETTER_RECORDED:
                        letter = event["data"]["dead_letter"]
                        letters[letter["id"]] = letter
                    if event["event_type"] in _ARTIFACT_EVENTS:
                        artifact_events.append(event)
    except StateError as exc:
        return [_check("hash chain", False, str(exc))]
    count = scan.tail.seq
    checks.append(_check("hash chain", True, f"{count} events, seq 1..{count}"))
    checks.append(_end_check(store, scan))
    checks.append(
        _check(
            "event schema",
            bad is None,
            "every line valid" if bad is None else f"transitions.jsonl line {bad[0]}: {bad[1]}",
        )
    )
    if state is None:
        return [*checks, _check("state.json", False, "the log holds no complete event")]
    expected = render(stamp_log(state, scan.tail.offset, scan.tail.crc32))
    checks.append(_state_check(store, expected))
    checks.append(_dead_letters_check(store, state["dead_letter_ids"]))
    checks.append(_artifacts_check(store, artifact_events))
    for artifact, schema in (
        (names.TEST_RESULTS_ARTIFACT, "test_results"),
        (names.VALIDATION_REPORT_ARTIFACT, "validation_report"),
    ):
        path = store.artifacts_dir / artifact
        if path.is_file():
            checks.append(_json_file_check(f"artifacts/{artifact}", _text(path), schema))
    return checks


def _artifacts_check(store: ProjectStore, events: list[Event]) -> Check:
    """Every recorded artifact against the digest the log recorded for it last."""
    changed, unrecorded = check_digests(store, events)
    extra = f"; not in the log, so unused: {_first(unrecorded)}" if unrecorded else ""
    if not changed:
        return _check("artifact digests", True, "every recorded artifact matches" + extra)
    return _check("artifact digests", False, _first(changed, "; ") + extra)


def _first(items: list[str], separator: str = ", ", shown: int = 3) -> str:
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def _end_check(store: ProjectStore, scan: LogScan) -> Check:
    """The log ends with a whole batch (a torn line is repaired by the next command that
    writes, never by verify)."""
    if not scan.pending and not scan.fragment:
        return _check("log end", True, "ends with a whole batch")
    what = f"a batch cut short ({len(scan.pending)} event(s))" if scan.pending else "a torn line"
    return _check(
        "log end",
        False,
        f"ends in {what} after seq {scan.tail.seq}; the next command that writes moves it to "
        "transitions.jsonl.torn",
    )


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _json_file_check(label: str, text: str, schema: str) -> Check:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return _check(label, False, f"not valid JSON ({json_problem(exc)})")
    except RecursionError:
        return _check(label, False, "JSON nested too deeply")
    found = problems(schema, data)
    return _check(label, not found, found[0] if found else "valid")


def _state_check(store: ProjectStore, expected: str) -> Check:
    label = "state.json"
    try:
        text = _text(store.state_path)
    except FileNotFoundError:
        return _check(label, False, f"missing; `somas reconstruct {store.project_id}` rebuilds it")
    except IsADirectoryError:
        return _check(label, False, "is a folder, not a file")
    schema = _json_file_check(label, text, "state")
    if not schema["ok"]:
        schema["detail"] += (
            f"; `somas restore {store.project_id}` or `somas reconstruct {store.project_id}`"
        )
        return schema
    if text == expected:
        return _check(label, True, "valid and identical to the log's projection")
    if text == legacy_text(expected):
        return _check(
            label,
            True,
            "identical to the log's projection (written before last_event.log_bytes; the next "
            "command that writes adds it)",
        )
    diff = [
        line
        for line in difflib.unified_diff(text.splitlines(), expected.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    first = diff[0].strip() if diff else "(whitespace)"
    return _check(
        label,
        False,
        f"differs from the log's projection, first at: {first}; "
        f"`somas reconstruct {store.project_id} --check` shows all",
    )


def _dead_letters_check(store: ProjectStore, ids: list[str]) -> Check:
    label = names.DEAD_LETTERS_FILE
    try:
        text = _text(store.dead_letters_path)
    except IsADirectoryError:
        return _check(label, False, "is a folder, not a file")
    except FileNotFoundError:
        return _check(label, not ids, "missing" + (f" but the log has {len(ids)}" if ids else ""))
    result = _json_file_check(label, text, "dead_letters")
    if not result["ok"]:
        return result
    on_disk = [entry["id"] for entry in json.loads(text)]
    if on_disk != ids:
        return _check(
            label,
            False,
            f"lists {len(on_disk)} entries, the log has {len(ids)} "
            "(a hand purge is recorded by the next command)",
        )
    return _check(label, True, f"{len(ids)} entries, matching the log")
