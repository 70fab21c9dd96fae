"""`somas verify`: every file of a project against its schema, the chain, and each other."""

from __future__ import annotations

import difflib
import json
from typing import TypedDict

from somas_action.config.schemas import problems
from somas_action.core import names
from somas_action.core.domain import Event
from somas_action.core.errors import StateError
from somas_action.core.projection import fold, render
from somas_action.state.artifacts import check_digests
from somas_action.state.jsonio import json_problem
from somas_action.state.store import ProjectStore


class Check(TypedDict):
    """One check of `somas verify`: what was checked, whether it held, and the first problem."""

    check: str
    ok: bool
    detail: str


def _check(name: str, ok: bool, detail: str) -> Check:
    return {"check": name, "ok": ok, "detail": detail}


def verify_project(store: ProjectStore) -> list[Check]:
    """Run every check; each result names the first bad line or field it found."""
    if not store.exists():
        raise StateError(f"{store.log.path}: no log; `somas list` shows the projects")
    checks = []
    try:
        events = store.log.read()
    except StateError as exc:
        return [_check("hash chain", False, str(exc))]
    checks.append(_check("hash chain", True, f"{len(events)} events, seq 1..{len(events)}"))
    bad = next(((i, p) for i, e in enumerate(events, 1) for p in problems("event", e)[:1]), None)
    checks.append(
        _check(
            "event schema",
            bad is None,
            "every line valid" if bad is None else f"transitions.jsonl line {bad[0]}: {bad[1]}",
        )
    )
    expected = render(fold(events))
    checks.append(_state_check(store, expected))
    checks.append(_dead_letters_check(store, json.loads(expected)["dead_letter_ids"]))
    checks.append(_artifacts_check(store, events))
    for artifact, schema in (
        (names.TEST_RESULTS_ARTIFACT, "test_results"),
        (names.VALIDATION_REPORT_ARTIFACT, "validation_report"),
    ):
        path = store.artifacts_dir / artifact
        if path.exists():
            checks.append(_json_file_check(f"artifacts/{artifact}", path.read_text(), schema))
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


def _json_file_check(label: str, text: str, schema: str) -> Check:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return _check(label, False, f"not valid JSON ({json_problem(exc)})")
    found = problems(schema, data)
    return _check(label, not found, found[0] if found else "valid")


def _state_check(store: ProjectStore, expected: str) -> Check:
    label = "state.json"
    try:
        text = store.state_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _check(label, False, f"missing; `somas reconstruct {store.project_id}` rebuilds it")
    schema = _json_file_check(label, text, "state")
    if not schema["ok"]:
        schema["detail"] += (
            f"; `somas restore {store.project_id}` or `somas reconstruct {store.project_id}`"
        )
        return schema
    if text == expected:
        return _check(label, True, "valid and identical to the log's projection")
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
        text = store.dead_letters_path.read_text(encoding="utf-8")
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
