"""The hash-chained log: append, verify, repair a torn tail, refuse a corrupt middle."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from somas_action.core import events as ev
from somas_action.core.domain import EventDraft
from somas_action.core.errors import StateError
from somas_action.core.events import EventType
from somas_action.state.eventlog import GENESIS_HASH, EventLog


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


def test_append_assigns_contiguous_seq_and_a_verifiable_chain(log: EventLog) -> None:
    log.append(_drafts(3))
    log.append(_drafts(2, start=3))
    events = log.read()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert log.tail().seq == 5 and log.tail().hash == events[-1]["hash"]


def test_lines_use_the_spacing_the_runbook_greps_for(log: EventLog) -> None:
    log.append(_drafts(1))
    line = log.path.read_text().splitlines()[0]
    assert '"status": "in_progress"' in line
    assert line.endswith('"}') and '"hash": "' in line
    assert json.loads(line)["data"]["text"] == 'é ✓ "quoted"'


def test_the_same_command_yields_the_same_event_ids() -> None:
    assert _drafts(1)[0]["id"] == _drafts(1)[0]["id"]
    assert _drafts(1)[0]["id"] != _drafts(1, start=1)[0]["id"]


def test_torn_last_line_is_repaired_at_every_byte_offset(tmp_path: Path) -> None:
    source = EventLog(tmp_path / "source.jsonl")
    source.append(_drafts(4))
    data = source.path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    complete = source.read()
    for cut in range(last_start, len(data)):
        path = tmp_path / f"cut-{cut}.jsonl"
        path.write_bytes(data[:cut])
        log = EventLog(path)
        events = log.read()
        if cut == len(data) - 1:  # only the newline is missing: the event is whole and kept
            assert events == complete
        else:
            assert events == complete[:3], cut
            assert path.read_bytes() == data[:last_start]
        # After the repair the log appends cleanly and verifies again.
        log.append(_drafts(1, start=9))
        assert [e["seq"] for e in log.read()][-1] == len(events) + 1


def test_torn_fragment_is_kept_aside_not_lost(log: EventLog) -> None:
    log.append(_drafts(2))
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-20])
    log.read()
    aside = log.path.with_name("transitions.jsonl.torn")
    assert aside.read_bytes() == data[data.rstrip(b"\n").rfind(b"\n") + 1 : -20] + b"\n"


def test_corrupt_middle_line_is_refused_with_its_line_number(log: EventLog) -> None:
    log.append(_drafts(3))
    lines = log.path.read_text().splitlines()
    lines[1] = lines[1][:40]
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StateError, match=r"transitions.jsonl: line 2: not valid JSON"):
        log.read()


def test_edited_middle_line_breaks_the_hash_chain(log: EventLog) -> None:
    log.append(_drafts(3))
    text = log.path.read_text().replace('"attempt": 1', '"attempt": 2', 1)
    log.path.write_text(text)
    with pytest.raises(StateError, match=r"line 1: hash chain broken"):
        log.read()


def test_a_missing_line_is_named(log: EventLog) -> None:
    log.append(_drafts(3))
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    with pytest.raises(StateError, match=r"line 2: seq is 3, expected 2"):
        log.read()


def test_tail_reads_only_the_end(log: EventLog, mocker: MockerFixture) -> None:
    log.append(_drafts(50))
    read = mocker.spy(EventLog, "read")
    assert log.tail().seq == 50
    read.assert_not_called()  # tail must not read the whole log
