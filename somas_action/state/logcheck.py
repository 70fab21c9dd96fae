"""`state.json` against `transitions.jsonl`, checked on every load, and what follows from it.

`state.json` records where in the log it was folded to: the last event's seq and hash, the
log's length up to it and a CRC-32 of those bytes (`.last_event.log_bytes`/`log_crc32`). On
load:

- the log is at least that long, and its first `log_bytes` bytes have that CRC (a deep load;
  views over every project only check the length and the last line's hash). An edited,
  deleted or inserted line before that point, or a log cut short, is refused with the first
  bad line (or the first missing seq) named;
- what follows in the log is read and verified: whole batches after the state are folded onto
  it (a crash between the append and the rewrite of state.json leaves exactly one); a torn
  last line or a batch cut short, which no state counts, is cut aside by the next command that
  writes; lines an operator appended by hand become an event; more than one batch means
  state.json is an old copy, which no command silently moves backwards or forwards.

Nothing here writes: it says what `ProjectStore.settle` must repair and what the runner must
record or refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from somas_action.core.domain import JsonObject, State, StateEdit
from somas_action.core.errors import StateError
from somas_action.core.projection import (
    digest_matches,
    fold_one,
    log_position,
    stamp_log,
    strip_digest,
)
from somas_action.state.eventlog import (
    EMPTY_TAIL,
    RESTORE_HINT,
    BadLine,
    EventLog,
    LogEnd,
    LogScan,
    Tail,
    crc_of,
    gc_paused,
)

_EVENT_START = b'{"seq": '


@dataclass(frozen=True)
class Cut:
    """Log bytes after `offset` that no state counts and no batch completes: cut them aside."""

    kind: ClassVar[str] = "torn_tail"
    offset: int
    size: int  # the log's size when the cut was planned; settle refuses if it changed
    aside: bytes
    dropped_events: int

    @property
    def note(self) -> str:
        """What a view says about it."""
        what = f"a batch cut short ({self.dropped_events} event(s))" if self.dropped_events else ""
        return (
            f"the log ends in {what or 'a torn line'} that no state counts; the next command "
            "that writes moves it to transitions.jsonl.torn"
        )


@dataclass(frozen=True)
class Reproject:
    """state.json is missing, one batch behind the log, or in the older format: rewrite it."""

    kind: ClassVar[str] = "state_rewritten"
    reason: str

    @property
    def note(self) -> str:
        """What a view says about it."""
        return f"state.json is {self.reason}; the next command that writes rewrites it"


@dataclass(frozen=True)
class HandAppended:
    """Lines an operator appended to the log by hand (the runbook's "update the log")."""

    kind: ClassVar[str] = "hand_appended"
    offset: int
    size: int
    lines: tuple[str, ...]

    @property
    def note(self) -> str:
        """What a view says about it."""
        return (
            f"{len(self.lines)} line(s) appended to transitions.jsonl by hand; the next command "
            "that writes records them as an incident_resolved event"
        )


@dataclass(frozen=True)
class HandEdit:
    """`state.json` was edited by hand (the runbook's manual restart)."""

    kind: ClassVar[str] = "state_edit"
    edit: StateEdit

    @property
    def note(self) -> str:
        """What a view says about it."""
        return "state.json was edited by hand; the next command records the edit"


@dataclass(frozen=True)
class StaleCopy:
    """state.json is an older copy of the state (a backup, a file from git history)."""

    kind: ClassVar[str] = "stale_copy"
    project_id: str
    seq: int
    head: int
    backup: str | None

    @property
    def note(self) -> str:
        """What a view says about it."""
        return self.refusal

    @property
    def refusal(self) -> str:
        """Why a command refuses, and the two commands that settle it."""
        source = f"a copy of {self.backup}" if self.backup else "an older copy"
        restore = f"--from {self.backup} " if self.backup else ""
        return (
            f".somas/projects/{self.project_id}/state.json is {source}, taken at event "
            f"#{self.seq}; the log is at #{self.head}. No command moves a project backwards "
            f"by a file copy: `somas reconstruct {self.project_id}` puts back the log's state, "
            f"or `somas restore {self.project_id} {restore}--force` records going back"
        )


@dataclass(frozen=True)
class LettersPurged:
    """Entries were removed from `dead_letters.json` by hand (the runbook's `echo "[]" > …`)."""

    kind: ClassVar[str] = "dead_letters_purged"
    ids: tuple[str, ...]

    @property
    def note(self) -> str:
        """What a view says about it."""
        return "dead_letters.json was emptied by hand; the next command records it"


# Something found on load: a repair (no event), a change to record, or a refusal.
Finding = Cut | Reproject | HandAppended | HandEdit | StaleCopy | LettersPurged
# `(state.json bytes) -> name of a backup with those bytes`, or None.
BackupMatcher = Callable[[], str | None]


@dataclass
class Reading:
    """The project as the log says it is, and what the next writing command must do first."""

    state: State
    tail: Tail
    findings: list[Finding] = field(default_factory=list)


@dataclass
class _After:
    """What the log holds after a known position, folded onto the state at that position."""

    state: State | None
    batches: int
    single: bool  # every event after the position came from one append (one batch)
    tail: Tail
    cut: Cut | None
    hand: HandAppended | None


def read_after(log: EventLog, start: Tail, size: int, state: State | None) -> _After:
    """Fold the whole batches after `start` onto `state` (in place, streaming); note what
    follows them (a torn line or a batch cut short to cut aside, lines appended by hand)."""
    scan = log.scan(start)
    batches, marked = 0, False
    stamps: set[str] = set()
    hand: HandAppended | None = None
    with gc_paused():
        try:
            for batch in scan:
                batches += 1
                for event in batch:
                    state = fold_one(state, event)
                marked = marked or len(batch) > 1
                if len(stamps) < 2:
                    stamps.update(e["ts"] for e in batch)
        except BadLine as bad:
            hand = _hand_lines(log, bad.offset, size)
            if hand is None:
                raise
            scan.fragment, scan.pending = b"", []
    # Events of a log written before batch markers: one append shares one timestamp.
    single = batches <= 1 or (not marked and len(stamps) == 1)
    if state is not None:
        stamp_log(state, scan.tail.offset, scan.tail.crc32)
    return _After(state, batches, single, scan.tail, _cut(log, scan, hand, size), hand)


def _cut(log: EventLog, scan: LogScan, hand: HandAppended | None, size: int) -> Cut | None:
    """The torn bytes (and lines of a batch cut short) after the last whole batch."""
    start, stop = scan.tail.offset, hand.offset if hand else size
    if stop <= start:
        return None
    with open(log.path, "rb") as handle:
        handle.seek(start)
        aside = handle.read(stop - start)
    return Cut(start, size, aside, len(scan.pending))


def _hand_lines(log: EventLog, offset: int, size: int) -> HandAppended | None:
    """The lines from `offset` on, if none of them looks like one of our events."""
    with open(log.path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size - offset)
    pieces = data.split(b"\n")
    if any(piece.lstrip().startswith(_EVENT_START) for piece in pieces):
        return None  # an event of ours that does not verify: corruption, not a note
    lines = tuple(p.decode("utf-8", errors="replace").strip() for p in pieces)
    return HandAppended(offset, size, tuple(line for line in lines if line))


def first_bad_line(log: EventLog) -> BadLine | None:
    """Read the whole log, verifying it; the first line that breaks it, if any."""
    try:
        with gc_paused():
            for _ in log.scan():
                pass
    except BadLine as bad:
        return bad
    return None


def log_cut_short(project_id: str, log: EventLog, end: LogEnd, counted: int) -> StateError:
    """The log holds fewer bytes than state.json counts: name the first bad line (a line
    deleted in the middle), else the first missing seq (the log was cut)."""
    scan = log.scan()
    try:
        with gc_paused():
            for _ in scan:
                pass
    except BadLine as bad:
        return bad
    last = scan.tail.seq + len(scan.pending)
    return StateError(
        f"{log.path}: ends at seq {last} ({end.size} bytes) but state.json counts {counted} "
        f"events; seq {last + 1} is the first missing. The log was cut or replaced: "
        f"{RESTORE_HINT}; `somas reconstruct {project_id}` would instead accept the shorter log "
        f"(state.json goes back to seq {last}; the current one is kept as a backup)"
    )


def tampered(project_id: str, log: EventLog, counted: int) -> StateError:
    """The log's bytes before the state's position changed: name the first bad line."""
    bad = first_bad_line(log)
    if bad is not None:
        return bad
    return StateError(
        f"{log.path}: its first {counted} events are not the ones state.json was folded from "
        f"(the bytes differ, yet the chain verifies: the log was replaced); {RESTORE_HINT}, or "
        f"`somas reconstruct {project_id}` to take this log as the truth"
    )


def shape_problem(written: Mapping[str, Any]) -> str | None:
    """Why a parsed state.json cannot be read as a state at all (None: it can)."""
    last = written.get("last_event")
    if not isinstance(last, dict):
        return "last_event: expected an object"
    if not isinstance(last.get("seq"), int) or not isinstance(last.get("hash"), str):
        return "last_event: expected seq (a number) and hash (a string)"
    if not isinstance(written.get("stages"), dict) or not isinstance(written.get("pipeline"), list):
        return "stages/pipeline: expected an object and a list"
    if not all(isinstance(record, dict) for record in written["stages"].values()):
        return "stages: every stage must be an object"
    if not isinstance(written.get("dead_letter_ids"), list):
        return "dead_letter_ids: expected a list"
    return None


def genuine_position(
    project_id: str, log: EventLog, written: JsonObject, end: LogEnd, deep: bool
) -> Tail | None:
    """Where in the log an unedited state.json says it was folded to (checked), or None if it
    predates `log_bytes` (then the caller finds the position by reading the log)."""
    state = strip_digest(written)
    position = log_position(state)
    if position is None:
        return None
    size, crc = position
    last = state["last_event"]
    if end.size < size:
        raise log_cut_short(project_id, log, end, last["seq"])
    if deep:
        if crc_of(log.path, size) != crc:
            raise tampered(project_id, log, last["seq"])
    elif not _line_ends_at(log, size, last["hash"]):
        raise tampered(project_id, log, last["seq"])
    return Tail(last["seq"], last["hash"], size, crc)


def _line_ends_at(log: EventLog, offset: int, digest: str) -> bool:
    with open(log.path, "rb") as handle:
        handle.seek(max(offset - 80, 0))
        return handle.read(min(offset, 80)).endswith(f'{digest}"}}\n'.encode())


def check(
    project_id: str,
    log: EventLog,
    written: JsonObject | None,
    *,
    deep: bool,
    backup_of: BackupMatcher,
) -> Reading:
    """Compare state.json (parsed, or None if missing) with the log; see the module doc."""
    end = log.end()
    if written is None:
        return _from_log(log, end, Reproject("missing"))
    problem = shape_problem(written)
    if problem:
        raise StateError(
            f".somas/projects/{project_id}/state.json: {problem}; `somas reconstruct "
            f"{project_id}` rebuilds it from the log (or `somas restore {project_id}`)"
        )
    if not digest_matches(written):
        return _hand_edited(log, end, written)
    state = strip_digest(written)
    position = genuine_position(project_id, log, written, end, deep)
    findings: list[Finding] = []
    if position is None:  # a state.json written before log_bytes existed
        last = state["last_event"]
        if not deep and (end.seq, end.hash) == (last["seq"], last["hash"]) and not end.fragment:
            return Reading(state, Tail(end.seq, end.hash, end.offset, 0))
        position = _legacy_position(project_id, log, last["seq"], last["hash"])
        findings.append(Reproject("in the format from before log_bytes"))
    seq = state["last_event"]["seq"]
    after = read_after(log, position, end.size, state)
    assert after.state is not None  # folded onto a state, never None
    findings += [f for f in (after.cut, after.hand) if f is not None]
    if not after.single:
        findings.append(StaleCopy(project_id, seq, after.tail.seq, backup_of()))
    elif after.batches and not any(isinstance(f, Reproject) for f in findings):
        findings.append(Reproject("one batch behind the log"))
    return Reading(after.state, after.tail, findings)


def _legacy_position(project_id: str, log: EventLog, seq: int, digest: str) -> Tail:
    """The end of event `seq`, found by reading the whole log (verified)."""
    with gc_paused():
        scan = log.scan()
        for batch in scan:
            last = batch[-1]
            if last["seq"] >= seq:
                if last["seq"] == seq and last["hash"] == digest:
                    return scan.tail
                break
    raise StateError(
        f"{log.path}: state.json says it was folded up to seq {seq} (hash {digest[:12]}…), "
        f"which this log does not end a batch with; `somas reconstruct {project_id}` rebuilds "
        "it from the log"
    )


def _from_log(log: EventLog, end: LogEnd, why: Finding) -> Reading:
    """The state the log alone describes (state.json missing or not to be trusted)."""
    after = read_after(log, EMPTY_TAIL, end.size, None)
    if after.state is None:
        raise StateError(f"{log.path}: holds no complete event")
    findings: list[Finding] = [f for f in (after.cut, after.hand) if f is not None]
    return Reading(after.state, after.tail, [*findings, why])


def _hand_edited(log: EventLog, end: LogEnd, written: JsonObject) -> Reading:
    """state.json was edited: the log's state, and the edit to record."""
    reading = _from_log(log, end, Reproject("edited"))
    reading.findings[-1] = HandEdit(diff_editable(written, reading.state))
    return reading


# Fields an operator may change by editing state.json (the runbook's manual restart).
EDITABLE_FIELDS = ("status", "current_stage")
EDITABLE_STAGE_FIELDS = ("status",)


def diff_editable(written: Mapping[str, Any], projected: State) -> StateEdit:
    """What a hand edit of state.json changed: editable fields to apply, others to report."""
    changes: dict[str, Any] = {}
    ignored: list[str] = []
    for key in set(written) | set(projected):
        if key in ("projection_sha256", "stages") or written.get(key) == projected.get(key):
            continue
        if key in EDITABLE_FIELDS:
            changes[key] = written.get(key)
        elif key == "last_event" and _same_event(written.get(key), projected["last_event"]):
            continue  # the log position is the log's business, not an edit
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


def _same_event(written: Any, projected: Mapping[str, Any]) -> bool:
    return isinstance(written, dict) and all(
        written.get(k) == projected.get(k) for k in ("seq", "id", "hash")
    )
