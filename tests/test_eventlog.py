"""The hash-chained log: appends that name their tail, atomic batches, verified streaming reads."""

from __future__ import annotations

import itertools
import json
import os
import zlib
from pathlib import Path

import pytest

from somas_action.core import events as ev
from somas_action.core.domain import EventDraft
from somas_action.core.errors import LogMoved, StateError
from somas_action.core.events import EventType
from somas_action.state.eventlog import EMPTY_TAIL, GENESIS_HASH, EventLog, Tail


def _drafts(count: int, start: int = 0) -> list[EventDraft]:
    return [
        ev.draft(
            project_id="project-1",
            command_id=f"cmd-{start + i}",
            index=0,
            ts="2026-01-01T00:00:00.000Z",
            event_type=EventType.AGENT_INVOKED,
            actor="local:t",
            stage="intake",
            from_stage="intake",
            to_stage="intake",
            status="in_progress",
            attempt=1,
            data={"agent": "intake-analyst", "text": 'é ✓ "quoted"'},
        )
        for i in range(count)
    ]


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "transitions.jsonl")


def _append(log: EventLog, drafts: list[EventDraft], tail: Tail = EMPTY_TAIL) -> Tail:
    return log.append(drafts, tail)[1]


def test_append_assigns_contiguous_seq_and_a_verifiable_chain(log: EventLog) -> None:
    tail = _append(log, _drafts(3))
    tail = _append(log, _drafts(2, start=3), tail)
    events = log.read()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    data = log.path.read_bytes()
    assert tail == Tail(5, events[-1]["hash"], len(data), zlib.crc32(data))


def test_a_batch_marks_every_event_but_its_last(log: EventLog) -> None:
    _append(log, _drafts(3))
    lines = log.path.read_text().splitlines()
    assert [json.loads(line).get("batch_remaining") for line in lines] == [2, 1, None]
    # The marker sits before the chain members, so the runbook's greps and jq still work.
    assert '"batch_remaining": 2, "prev_hash": "' in lines[0]


def test_lines_use_the_spacing_the_runbook_greps_for(log: EventLog) -> None:
    _append(log, _drafts(1))
    line = log.path.read_text().splitlines()[0]
    assert '"status": "in_progress"' in line
    assert line.endswith('"}') and '"hash": "' in line
    assert json.loads(line)["data"]["text"] == 'é ✓ "quoted"'


def test_the_same_command_yields_the_same_event_ids() -> None:
    assert _drafts(1)[0]["id"] == _drafts(1)[0]["id"]
    assert _drafts(1)[0]["id"] != _drafts(1, start=1)[0]["id"]


def test_an_append_from_a_stale_tail_is_a_conflict_and_writes_nothing(log: EventLog) -> None:
    first = _append(log, _drafts(1))
    _append(log, _drafts(1, start=1), first)  # another writer
    before = log.path.read_bytes()
    with pytest.raises(LogMoved, match=r"moved on since this command read it"):
        log.append(_drafts(1, start=2), first)
    assert log.path.read_bytes() == before


def test_an_append_to_a_log_cut_shorter_is_a_conflict(log: EventLog) -> None:
    tail = _append(log, _drafts(3))
    data = log.path.read_bytes()
    log.path.write_bytes(data[: data.index(b"\n") + 1])
    with pytest.raises(LogMoved):
        log.append(_drafts(1, start=5), tail)


def test_a_failed_write_leaves_no_partial_batch(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    tail = _append(log, _drafts(2))
    before = log.path.read_bytes()
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:100]))  # the first page made it, then the disk filled up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        log.append(_drafts(3, start=2), tail)
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    assert log.append(_drafts(1, start=9), tail)[1].seq == 3


def test_a_cut_at_every_byte_of_the_last_batch_never_yields_half_of_it(
    tmp_path: Path,
) -> None:
    source = EventLog(tmp_path / "source.jsonl")
    first = _append(source, _drafts(2))
    _append(source, _drafts(3, start=2), first)
    data = source.path.read_bytes()
    whole = source.read()
    for cut in range(first.offset, len(data) + 1):
        path = tmp_path / f"cut-{cut}.jsonl"
        path.write_bytes(data[:cut])
        scan = EventLog(path).scan()
        batches = list(scan)
        events = [e for b in batches for e in b]
        assert events == (whole if cut == len(data) else whole[:2]), cut
        assert scan.tail.offset == (len(data) if cut == len(data) else first.offset)
        assert len(scan.pending) + len(events) == data[:cut].count(b"\n"), cut
        assert path.read_bytes() == data[:cut]  # reading never repairs


def test_a_log_written_before_batch_markers_reads_each_line_as_a_batch(log: EventLog) -> None:
    _append(log, _drafts(3))
    old_style = []
    prev = GENESIS_HASH
    for line in log.path.read_text().splitlines():
        event = json.loads(line)
        event.pop("batch_remaining", None)
        event.pop("hash")
        event["prev_hash"] = prev
        text, prev = _encode(event)
        old_style.append(text)
    log.path.write_text("\n".join(old_style) + "\n")
    assert [len(b) for b in log.scan()] == [1, 1, 1]


def _encode(event: dict[str, object]) -> tuple[str, str]:
    from somas_action.state.eventlog import encode_event

    return encode_event(event)


def test_corrupt_middle_line_is_refused_with_its_line_number(log: EventLog) -> None:
    _append(log, _drafts(3))
    lines = log.path.read_text().splitlines()
    lines[1] = lines[1][:40]
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StateError, match=r"transitions.jsonl: line 2: not valid JSON"):
        log.read()


def test_edited_middle_line_breaks_the_hash_chain(log: EventLog) -> None:
    _append(log, _drafts(3))
    text = log.path.read_text().replace('"attempt": 1', '"attempt": 2', 1)
    log.path.write_text(text)
    with pytest.raises(StateError, match=r"line 1: hash chain broken"):
        log.read()


def test_a_missing_line_is_named(log: EventLog) -> None:
    _append(log, _drafts(1))
    tail = _append(log, _drafts(1, start=1), _tail_after(log))
    _append(log, _drafts(1, start=2), tail)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    with pytest.raises(StateError, match=r"line 2: seq is 3, expected 2"):
        log.read()


def _tail_after(log: EventLog) -> Tail:
    scan = log.scan()
    for _ in scan:
        pass
    return scan.tail


def test_end_reads_only_the_end(log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    tail = EMPTY_TAIL
    for i in range(50):
        tail = _append(log, _drafts(1, start=i), tail)
    monkeypatch.setattr(EventLog, "read", lambda self: pytest.fail("must not read the log"))
    monkeypatch.setattr(EventLog, "scan", lambda self, start: pytest.fail("must not scan"))
    end = log.end()
    assert (end.seq, end.hash, end.offset, end.fragment) == (50, tail.hash, tail.offset, b"")
    with open(log.path, "ab") as handle:
        handle.write(b'{"seq": 51, "v"')
    torn = log.end()
    assert (torn.seq, torn.offset, torn.fragment) == (50, tail.offset, b'{"seq": 51, "v"')
