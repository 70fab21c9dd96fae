"""One project's folder: the log, its projection, dead letters, artifacts and backups."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

from somas_action.core import names
from somas_action.core.domain import DeadLetter, Event, EventDraft, JsonObject, State, StateEdit
from somas_action.core.errors import StateError
from somas_action.core.events import EventType
from somas_action.core.names import validate_project_id
from somas_action.core.projection import (
    apply_all,
    digest_matches,
    fold,
    render,
    strip_digest,
)
from somas_action.state.eventlog import EventLog, gc_paused
from somas_action.state.jsonio import atomic_write_json, atomic_write_text, json_problem

_LETTERS_REMOVED = (EventType.DEAD_LETTER_RETRIED, EventType.DEAD_LETTERS_PURGED)
# Fields an operator may change by editing state.json (the runbook's manual restart).
EDITABLE_FIELDS = ("status", "current_stage")
EDITABLE_STAGE_FIELDS = ("status",)


def projects_dir(repo: Path) -> Path:
    """`.somas/projects` of a repository."""
    return repo / names.SOMAS_DIR / names.PROJECTS_DIR


def unused_name(path: Path) -> Path:
    """`path`, or the first of `path.2`, `path.3`… that does not exist (backups never overwrite)."""
    target, counter = path, 2
    while target.exists():
        target = path.with_name(f"{path.name}.{counter}")
        counter += 1
    return target


def project_ids(repo: Path) -> list[str]:
    """Every project folder's id, by issue number (backups and strays skipped)."""
    root = projects_dir(repo)
    if not root.is_dir():
        return []
    ids = [p.name for p in root.iterdir() if p.is_dir() and names.PROJECT_ID_RE.match(p.name)]
    return sorted(ids, key=names.issue_number_of)


@dataclass(frozen=True)
class HandEdit:
    """`state.json` was edited by hand (the runbook's manual restart)."""

    kind: ClassVar[str] = "state_edit"
    edit: StateEdit


@dataclass(frozen=True)
class BackupCopied:
    """A backup was copied over `state.json` (the runbook's `cp state.json.backup… state.json`)."""

    kind: ClassVar[str] = "restore"
    name: str
    backup: Mapping[str, Any]


@dataclass(frozen=True)
class LettersPurged:
    """Entries were removed from `dead_letters.json` by hand (the runbook's `echo "[]" > …`)."""

    kind: ClassVar[str] = "dead_letters_purged"
    ids: tuple[str, ...]


# A change made to a project's files outside SOMAS, which the next command records as an event.
OutsideChange = HandEdit | BackupCopied | LettersPurged


class ProjectStore:
    """Reads and durably writes one project's files."""

    def __init__(self, repo: Path, project_id: str) -> None:
        self.project_id = validate_project_id(project_id)
        self.dir = projects_dir(repo) / project_id
        self.state_path = self.dir / names.STATE_FILE
        self.log = EventLog(self.dir / names.TRANSITIONS_FILE)
        self.dead_letters_path = self.dir / names.DEAD_LETTERS_FILE
        self.artifacts_dir = self.dir / names.ARTIFACTS_DIR

    def exists(self) -> bool:
        """Whether the project has a log."""
        return self.log.exists()

    # -- reading -----------------------------------------------------------------------------

    def read_state_file(self) -> JsonObject | None:
        """`state.json` as written (None if absent); a parse error is a one-line StateError."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(
                f"{self.state_path}: not valid JSON ({json_problem(exc)}); "
                f"run `somas restore {self.project_id}` (from a backup) or `somas reconstruct "
                f"{self.project_id}` (from transitions.jsonl)"
            ) from None
        if not isinstance(data, dict):
            raise StateError(
                f"{self.state_path}: expected a JSON object; "
                f"run `somas reconstruct {self.project_id}`"
            )
        return data

    def load(self) -> tuple[State, list[OutsideChange]]:
        """The project's state, and the outside changes to its files to record as events.

        Changes are: a hand edit of `state.json` (`state_edit`), a backup copied over it
        (`restore`, the runbook's `cp state.json.backup… state.json`) and entries removed from
        `dead_letters.json` (`dead_letters_purged`, the runbook's `echo "[]" > …`). A
        `state.json` merely behind the log (a crash between append and rewrite) is re-projected.
        """
        if not self.exists():
            raise StateError(
                f"{self.dir}: project {self.project_id} not found "
                "(no transitions.jsonl); `somas list` lists projects"
            )
        written = self.read_state_file()
        tail = self.log.tail()
        last = (written or {}).get("last_event")
        last = last if isinstance(last, dict) else {}
        in_step = last.get("seq") == tail.seq and last.get("hash") == tail.hash
        if written is not None and in_step and digest_matches(written):
            state = strip_digest(written)
            return state, self._dead_letter_changes(state)
        projected = self.state_from_log()
        changes: list[OutsideChange] = []
        if written is not None and not in_step:
            restored = self._matching_backup()
            if restored is not None:
                changes.append(BackupCopied(restored, written))
        elif written is not None:
            changes.append(HandEdit(diff_editable(written, projected)))
        if not changes:
            # Missing or merely behind the log (a crash): the log wins, silently. A file with
            # changes to record is left alone until the caller records them as events.
            atomic_write_text(self.state_path, render(projected))
        return projected, changes + self._dead_letter_changes(projected)

    def state_from_log(self) -> State:
        """The state the log describes, ignoring state.json."""
        with gc_paused():
            return fold(self.log.read())

    def _matching_backup(self) -> str | None:
        current = self.state_path.read_bytes()
        for path in self.backups():
            if path.read_bytes() == current:
                return path.name
        return None

    def _dead_letter_changes(self, state: State) -> list[OutsideChange]:
        """Ids the state holds that dead_letters.json no longer lists (a purge by hand)."""
        if not state["dead_letter_ids"]:
            return []
        try:
            on_disk = {entry.get("id") for entry in self.read_dead_letters()}
        except StateError:
            return []  # unreadable: the dead-letters command reports it; the log keeps all
        gone = [i for i in state["dead_letter_ids"] if i not in on_disk]
        return [LettersPurged(tuple(gone))] if gone else []

    def read_events(self) -> list[Event]:
        """Every event, chain verified."""
        return self.log.read()

    def first_event(self) -> Event:
        """The `project_created` event (reads only the first line)."""
        with open(self.log.path, encoding="utf-8") as handle:
            return cast(Event, json.loads(handle.readline()))

    def read_dead_letters(self) -> list[DeadLetter]:
        """`dead_letters.json` as a list (empty if absent)."""
        try:
            data = json.loads(self.dead_letters_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise StateError(
                f"{self.dead_letters_path}: not valid JSON ({json_problem(exc)}); restore "
                "dead_letters.json.backup or write [] to it"
            ) from None
        if not isinstance(data, list):
            raise StateError(f"{self.dead_letters_path}: expected a JSON array")
        return cast(list[DeadLetter], data)

    # -- writing -----------------------------------------------------------------------------

    def commit(
        self, state: State | None, drafts: Sequence[EventDraft]
    ) -> tuple[State, list[Event]]:
        """Append drafts to the log (fsync), then rewrite state.json and dead letters.

        Returns the new state and the events as written (with seq and hash).
        """
        written = self.log.append(drafts)
        new_state = apply_all(state, written)
        self.dir.mkdir(parents=True, exist_ok=True)
        letters: list[DeadLetter] = [
            e["data"]["dead_letter"]
            for e in written
            if e["event_type"] == EventType.DEAD_LETTER_RECORDED
        ]
        removed = any(e["event_type"] in _LETTERS_REMOVED for e in written)
        if letters or removed or not self.dead_letters_path.exists():
            wanted = set(new_state["dead_letter_ids"])
            existing = [d for d in self.read_dead_letters() if d.get("id") in wanted]
            known = {entry["id"] for entry in existing}
            atomic_write_json(
                self.dead_letters_path, existing + [d for d in letters if d["id"] not in known]
            )
        atomic_write_text(self.state_path, render(new_state))
        return new_state, written

    def reconstruct(self) -> tuple[str, list[DeadLetter]]:
        """The `state.json` text and the dead letters the log describes."""
        with gc_paused():
            events = self.log.read()
            state = fold(events)
        letters = {
            e["data"]["dead_letter"]["id"]: e["data"]["dead_letter"]
            for e in events
            if e["event_type"] == EventType.DEAD_LETTER_RECORDED
        }
        return render(state), [letters[i] for i in state["dead_letter_ids"]]

    def reconstruct_text(self) -> str:
        """The `state.json` text the log describes."""
        return render(self.state_from_log())

    def backups(self) -> list[Path]:
        """`state.json.backup*` files, oldest first."""
        found = [p for p in self.dir.glob(f"{names.STATE_BACKUP_FILE}*") if p.is_file()]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def backup_state(self, dated: str | None = None) -> Path | None:
        """Copy state.json to `state.json.backup`, or to `state.json.backup.<dated>`.

        No backup is ever overwritten: a different `state.json.backup` is first moved to a
        dated name (from its own modification day), and dated names get `.2`, `.3`…
        """
        if not self.state_path.exists():
            return None
        if dated is not None:
            target = self._free_backup_name(dated)
        else:
            target = self.dir / names.STATE_BACKUP_FILE
            if target.exists() and target.read_bytes() != self.state_path.read_bytes():
                day = datetime.fromtimestamp(target.stat().st_mtime, UTC).strftime("%Y%m%d")
                os.replace(target, self._free_backup_name(day))
        shutil.copy2(self.state_path, target)
        return target

    def _free_backup_name(self, dated: str) -> Path:
        return unused_name(self.dir / f"{names.STATE_BACKUP_FILE}.{dated}")

    def write_artifact(self, name: str, content: str | JsonObject | list[Any]) -> Path:
        """Write one artifact atomically; names are checked by the caller's schema."""
        path = self.artifacts_dir / name
        if path.parent != self.artifacts_dir:
            raise StateError(f"artifact name {name!r} must be a plain file name")
        if isinstance(content, str):
            atomic_write_text(path, content if content.endswith("\n") else content + "\n")
        else:
            atomic_write_json(path, content)
        return path


def diff_editable(written: Mapping[str, Any], projected: State) -> StateEdit:
    """What a hand edit of state.json changed: editable fields to apply, others to report."""
    changes: dict[str, Any] = {}
    ignored: list[str] = []
    for key in set(written) | set(projected):
        if key in ("projection_sha256", "stages") or written.get(key) == projected.get(key):
            continue
        if key in EDITABLE_FIELDS:
            changes[key] = written.get(key)
        else:
            ignored.append(key)
    stage_changes: dict[str, dict[str, Any]] = {}
    written_stages = written.get("stages") if isinstance(written.get("stages"), dict) else {}
    for stage, record in projected["stages"].items():
        edited = (written_stages or {}).get(stage)
        if not isinstance(edited, dict):
            continue
        for field_name, value in edited.items():
            if record.get(field_name) == value:
                continue
            if field_name in EDITABLE_STAGE_FIELDS:
                stage_changes.setdefault(stage, {})[field_name] = value
            else:
                ignored.append(f"stages.{stage}.{field_name}")
    if stage_changes:
        changes["stages"] = stage_changes
    return {"changes": changes, "ignored": sorted(ignored)}
