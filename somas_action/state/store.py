"""One project's folder: the log, its projection, dead letters, artifacts and backups.

Writes happen under the project's lock (`state.locks.project_lock`): the append checks that
the log still ends where the writer read it (else `LogMoved`), then state.json and the
dead letters are rewritten. Reads never write and never lock; `read` checks state.json against
the log cheaply (`state.logcheck`) and `settle` makes the repairs it found, under the lock, for
the commands that write.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from somas_action.core import names
from somas_action.core.domain import DeadLetter, Event, EventDraft, JsonObject, State
from somas_action.core.errors import LogMoved, StateError
from somas_action.core.events import EventType
from somas_action.core.names import validate_project_id
from somas_action.core.projection import (
    apply_all,
    digest_matches,
    fold_into,
    log_position,
    render,
    stamp_log,
    strip_digest,
    without_log_position,
)
from somas_action.state.eventlog import EMPTY_TAIL, EventLog, Tail, gc_paused
from somas_action.state.jsonio import atomic_write_json, atomic_write_text, load_json_file
from somas_action.state.locks import project_lock
from somas_action.state.logcheck import (
    Cut,
    Finding,
    HandAppended,
    HandEdit,
    LettersPurged,
    Reading,
    Reproject,
    StaleCopy,
    check,
    diff_editable,
)

__all__ = [
    "Finding",
    "HandAppended",
    "HandEdit",
    "LettersPurged",
    "ProjectStore",
    "StaleCopy",
    "diff_editable",
    "project_ids",
    "projects_dir",
    "unused_name",
]

_LETTERS_REMOVED = (
    EventType.DEAD_LETTER_RETRIED,
    EventType.DEAD_LETTERS_PURGED,
    EventType.DEAD_LETTERS_RESOLVED,
)
HAND_LINES_FILE = "transitions.jsonl.hand"


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


def tail_of(state: State) -> Tail:
    """Where in the log a loaded state was folded to (what its next append expects)."""
    position = log_position(state)
    if position is None:
        raise StateError(
            f"{state['project_id']}: the state does not say where the log ends; "
            f"`somas reconstruct {state['project_id']}`"
        )
    last = state["last_event"]
    return Tail(last["seq"], last["hash"], position[0], position[1])


class ProjectStore:
    """Reads and durably writes one project's files."""

    def __init__(self, repo: Path, project_id: str) -> None:
        self.repo = repo
        self.project_id = validate_project_id(project_id)
        # One path parse, the others on first use: the views make a store per project.
        self.dir = Path(f"{repo}/{names.SOMAS_DIR}/{names.PROJECTS_DIR}/{project_id}")

    @cached_property
    def state_path(self) -> Path:
        """`state.json`."""
        return self.dir / names.STATE_FILE

    @cached_property
    def log(self) -> EventLog:
        """`transitions.jsonl`."""
        return EventLog(self.dir / names.TRANSITIONS_FILE)

    @cached_property
    def dead_letters_path(self) -> Path:
        """`dead_letters.json`."""
        return self.dir / names.DEAD_LETTERS_FILE

    @cached_property
    def artifacts_dir(self) -> Path:
        """`artifacts/`."""
        return self.dir / names.ARTIFACTS_DIR

    def exists(self) -> bool:
        """Whether the project was opened: its log holds at least one complete line."""
        if self.log.path.is_dir():
            raise StateError(self._folder_in_place_of(self.log.path))
        return self.log.end().offset > 0

    def _folder_in_place_of(self, path: Path) -> str:
        return (
            f"{path}: is a folder, not a file; move it away, then restore the file from git "
            f"history (`git log --oneline {self.dir}`)"
        )

    # -- reading -----------------------------------------------------------------------------

    def read_state_file(self) -> JsonObject | None:
        """`state.json` as written (None if absent); an unreadable file is a one-line StateError."""
        fix = (
            f"run `somas restore {self.project_id}` (from a backup) or `somas reconstruct "
            f"{self.project_id}` (from transitions.jsonl)"
        )
        try:
            data = load_json_file(self.state_path, fix)
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            raise StateError(f"{self.state_path}: expected a JSON object; {fix}")
        return data

    def read(self, deep: bool = True) -> Reading:
        """The project as its log says it is, and the repairs and changes found; writes nothing.

        `deep` checks the CRC of every log byte state.json counts (a few ms per MB); without it
        only the log's length and last line are checked (views over every project).
        """
        if not self.exists():
            raise self._not_opened()
        written = self.read_state_file()
        reading = check(
            self.project_id, self.log, written, deep=deep, backup_of=self._matching_backup
        )
        reading.findings += self._dead_letter_changes(written, reading.state)
        return reading

    def peek(self) -> State | None:
        """`state.json` as written, when it is in step with the log's last line; else None.

        The cheap read of the views over every project (`list`, `monitor`): one JSON parse and
        the log's last line, no digest, nothing written. What it does not notice (a hand edit,
        a purge of dead letters by hand) `health`, `status <id>` and every writing command do;
        None sends the caller to `load`, which explains what is off.
        """
        try:
            written = self.read_state_file()
        except StateError:
            return None
        last = (written or {}).get("last_event")
        if written is None or not isinstance(last, dict):
            return None
        end = self.log.end()
        if end.fragment or last.get("seq") != end.seq or last.get("hash") != end.hash:
            return None
        return strip_digest(written)

    def load(self, deep: bool = True) -> tuple[State, list[Finding]]:
        """The project's state and what was found on the way (see `read`); writes nothing."""
        reading = self.read(deep)
        return reading.state, reading.findings

    def _not_opened(self) -> StateError:
        issue = names.issue_number_of(self.project_id)
        if self.log.path.exists():
            return StateError(
                f"{self.log.path}: holds no complete event (the project's first write was cut "
                f"short); `somas start --issue {issue}` opens the project again"
            )
        return StateError(
            f"{self.dir}: project {self.project_id} not found (no transitions.jsonl); "
            "`somas list` lists projects"
        )

    def state_from_log(self) -> State:
        """The state the log describes, ignoring state.json (streaming)."""
        state, _, _ = self._fold_log()
        return state

    def _fold_log(self) -> tuple[State, Tail, dict[str, DeadLetter]]:
        """Fold the whole log (verified, one event at a time); the state, tail, dead letters."""
        state: State | None = None
        letters: dict[str, DeadLetter] = {}
        scan = self.log.scan()
        recorded = EventType.DEAD_LETTER_RECORDED
        with gc_paused():
            for batch in scan:
                state = fold_into(state, batch)
                for event in batch:
                    if event["event_type"] == recorded:
                        letter = event["data"]["dead_letter"]
                        letters[letter["id"]] = letter
        if state is None:
            raise self._not_opened()
        return stamp_log(state, scan.tail.offset, scan.tail.crc32), scan.tail, letters

    def _matching_backup(self) -> str | None:
        current = self.state_path.read_bytes()
        for path in reversed(self.backups()):
            if path.read_bytes() == current:
                return path.name
        return None

    def _dead_letter_changes(self, written: JsonObject | None, state: State) -> list[Finding]:
        """Ids the state holds that dead_letters.json no longer lists (a purge by hand).

        The ids are the ones state.json counted, so a batch a crash left unprojected (its dead
        letter not yet in the file) is not mistaken for a purge.
        """
        counted = state["dead_letter_ids"]
        if written is not None and digest_matches(written):
            counted = [i for i in written.get("dead_letter_ids", []) if i in counted]
        if not counted:
            return []
        try:
            on_disk = {entry["id"] for entry in self.read_dead_letters()}
        except StateError:
            return []  # unreadable: the dead-letters command reports it; the log keeps all
        gone = [i for i in counted if i not in on_disk]
        return [LettersPurged(tuple(gone))] if gone else []

    def read_events(self) -> list[Event]:
        """Every event of every complete batch, chain verified."""
        return self.log.read()

    def first_event(self) -> Event:
        """The `project_created` event (reads only the first line)."""
        with open(self.log.path, "rb") as handle:
            first = handle.readline()
        try:
            return cast(Event, load_first_line(first))
        except ValueError:
            raise StateError(f"{self.log.path}: line 1 is not an event; {self._rebuild}") from None

    @property
    def _rebuild(self) -> str:
        return f"`somas reconstruct {self.project_id}` rebuilds it from the log"

    def read_dead_letters(self) -> list[DeadLetter]:
        """`dead_letters.json` as a list (empty if absent); a bad file is one clear line."""
        fix = f"write [] to it, or {self._rebuild}"
        try:
            data = load_json_file(self.dead_letters_path, fix)
        except FileNotFoundError:
            return []
        if not isinstance(data, list):
            raise StateError(f"{self.dead_letters_path}: expected a JSON array; {fix}")
        for number, entry in enumerate(data, start=1):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise StateError(
                    f"{self.dead_letters_path}: entry {number} is not a dead letter (an object "
                    f"with an id); {fix}"
                )
        return cast(list[DeadLetter], data)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the project's lock (one writer at a time)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with project_lock(self.repo, self.project_id):
            yield

    def settle(self, reading: Reading) -> State:
        """Make the repairs `read` found (no events): cut a torn tail or hand-appended lines
        aside, rewrite a missing or lagging state.json. Raises LogMoved if the log moved."""
        repairs = [f for f in reading.findings if isinstance(f, Cut | HandAppended | Reproject)]
        if not repairs:
            return reading.state
        with self.locked():
            size = self.log.end().size
            planned = next((f.size for f in repairs if isinstance(f, Cut | HandAppended)), None)
            if size != (planned if planned is not None else reading.tail.offset):
                raise LogMoved(f"{self.log.path}: changed while it was being read; reloading")
            for found in repairs:
                if isinstance(found, Cut):
                    self.log.cut(found.offset, found.aside)
                elif isinstance(found, HandAppended):
                    self._keep_hand_lines(found)
                    self.log.cut(reading.tail.offset, b"")
            self._sync_letters(reading.state)
            atomic_write_text(self.state_path, render(reading.state))
        return reading.state

    def _keep_hand_lines(self, found: HandAppended) -> None:
        with open(self.dir / HAND_LINES_FILE, "ab") as handle:
            handle.write("".join(line + "\n" for line in found.lines).encode())
            handle.flush()
            os.fsync(handle.fileno())

    def commit(
        self, state: State | None, drafts: Sequence[EventDraft]
    ) -> tuple[State, list[Event]]:
        """Append drafts as one batch after `state`'s tail, then rewrite state.json and dead
        letters, all under the project lock; the new state and the events as written.

        LogMoved when the log no longer ends where `state` was read (another writer).
        """
        expected = EMPTY_TAIL if state is None else tail_of(state)
        with self.locked():
            if state is None:
                self._clear_unopened()
            letters = self._letters_before(drafts)
            written, tail = self.log.append(drafts, expected)
            new_state = stamp_log(apply_all(state, written), tail.offset, tail.crc32)
            self._write_letters(new_state, written, letters)
            atomic_write_text(self.state_path, render(new_state))
        return new_state, written

    def _clear_unopened(self) -> None:
        """A first write cut short left a log with no complete line: keep it aside, start over."""
        end = self.log.end()
        if end.size and not end.offset:
            self.log.cut(0, end.fragment)

    def _letters_before(self, drafts: Sequence[EventDraft]) -> list[DeadLetter] | None:
        """The queue as it is now, read before appending when the batch will rewrite it (so a
        bad file stops the command before anything is recorded)."""
        kinds = {d["event_type"] for d in drafts}
        if EventType.DEAD_LETTER_RECORDED in kinds or kinds & set(_LETTERS_REMOVED):
            return self.read_dead_letters()
        return None if self.dead_letters_path.exists() else []

    def _write_letters(
        self, state: State, written: list[Event], existing: list[DeadLetter] | None
    ) -> None:
        if existing is None:
            return
        recorded: list[DeadLetter] = [
            e["data"]["dead_letter"]
            for e in written
            if e["event_type"] == EventType.DEAD_LETTER_RECORDED
        ]
        wanted = set(state["dead_letter_ids"])
        kept = [d for d in existing if d["id"] in wanted]
        known = {entry["id"] for entry in kept}
        atomic_write_json(
            self.dead_letters_path, kept + [d for d in recorded if d["id"] not in known]
        )

    def _sync_letters(self, state: State) -> None:
        """Make dead_letters.json list the state's ids (bodies from the file, else the log)."""
        wanted = state["dead_letter_ids"]
        try:
            on_disk = {d["id"]: d for d in self.read_dead_letters()}
        except StateError:
            on_disk = {}
        if list(on_disk) == wanted and self.dead_letters_path.exists():
            return
        if any(i not in on_disk for i in wanted):
            _, _, from_log = self._fold_log()
            on_disk = {**from_log, **on_disk}
        atomic_write_json(self.dead_letters_path, [on_disk[i] for i in wanted if i in on_disk])

    def reconstruct(self) -> tuple[str, list[DeadLetter], Cut | None]:
        """The `state.json` text and dead letters the log describes (streaming, constant
        memory), and the torn end to cut aside, if any."""
        state, tail, letters = self._fold_log()
        size = self.log.end().size
        cut = None
        if size > tail.offset:
            with open(self.log.path, "rb") as handle:
                handle.seek(tail.offset)
                aside = handle.read()
            cut = Cut(tail.offset, size, aside, 0)
        return render(state), [letters[i] for i in state["dead_letter_ids"]], cut

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
        if not self.state_path.is_file():
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


def legacy_text(state_text: str) -> str:
    """The same state.json as SOMAS wrote it before `.last_event` held the log position."""
    state = cast(State, {k: v for k, v in json.loads(state_text).items()})
    return render(without_log_position(strip_digest(state)))


def load_first_line(line: bytes) -> JsonObject:
    """The first line of a log, parsed (ValueError if it is not a JSON object)."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value
