"""The append-only, hash-chained `transitions.jsonl`: the single source of truth.

Each line is one JSON object whose last member is `"hash"`; the hash covers the previous
event's hash and every byte of the line before that member, so verifying the chain never
re-serialises JSON.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from somas_action.core.domain import Event, EventDraft, JsonObject
from somas_action.core.errors import StateError
from somas_action.state.jsonio import fsync_dir, json_problem

GENESIS_HASH = "0" * 64
_HASH_KEY = ', "hash": "'
_SUFFIX_LEN = len(_HASH_KEY) + 64 + 2  # , "hash": "<64 hex>"}


def chain_hash(prev_hash: str, body: str) -> str:
    """The hash of an event body (its JSON without the hash member) chained to its parent."""
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def encode_event(event: JsonObject) -> tuple[str, str]:
    """Serialise an event (without `hash`) to its line and return (line, hash)."""
    body = json.dumps(event, ensure_ascii=False)
    digest = chain_hash(event["prev_hash"], body)
    return f'{body[:-1]}{_HASH_KEY}{digest}"}}', digest


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many acyclic dicts (it would rescan them all)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Tail:
    """What an append needs to know about the end of the log."""

    seq: int
    hash: str


EMPTY_TAIL = Tail(seq=0, hash=GENESIS_HASH)


class EventLog:
    """One project's `transitions.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        """Whether the log file exists."""
        return self.path.exists()

    def read(self) -> list[Event]:
        """Every event, chain verified; a torn last line is repaired, a bad middle line refused."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        if data and not data.endswith(b"\n"):
            data = self._repair_torn_tail(data)
        lines = data.decode("utf-8", errors="replace").split("\n")[:-1]
        # Decoding 100k lines one by one is dominated by per-call overhead and by the cyclic
        # GC scanning the new dicts; one json.loads of the joined lines with the GC paused is
        # about twice as fast. A bad line falls back to line-by-line decoding to name it.
        with gc_paused():
            try:
                events = json.loads("[" + ",".join(lines) + "]")
                if len(events) != len(lines):
                    raise ValueError("a line held more than one JSON value")
            except ValueError:
                events = [self._parse(line, number) for number, line in enumerate(lines, 1)]
            prev = GENESIS_HASH
            for number, (line, event) in enumerate(zip(lines, events, strict=True), start=1):
                self._verify(line, event, number, prev)
                prev = event["hash"]
        return cast(list[Event], events)

    def tail(self) -> Tail:
        """Seq and hash of the last event, reading only the end of the file (flat cost)."""
        last = self._last_line()
        if last is None:
            return EMPTY_TAIL
        try:
            event = json.loads(last)
            return Tail(seq=int(event["seq"]), hash=str(event["hash"]))
        except (ValueError, KeyError, TypeError):
            # A torn or corrupt ending: the full read repairs or explains it.
            events = self.read()
            return Tail(events[-1]["seq"], events[-1]["hash"]) if events else EMPTY_TAIL

    def append(self, drafts: Iterable[EventDraft], tail: Tail | None = None) -> list[Event]:
        """Append drafts (events without seq/prev_hash/hash) in one write and fsync; return them."""
        tail = tail or self.tail()
        lines: list[str] = []
        written: list[Event] = []
        seq, prev = tail.seq, tail.hash
        for draft in drafts:
            seq += 1
            # `seq` first and `hash` last: the line's layout is part of the hash chain.
            body: JsonObject = {"seq": seq, **{k: v for k, v in draft.items() if k != "seq"}}
            body["prev_hash"] = prev
            line, prev = encode_event(body)
            lines.append(line)
            written.append(cast(Event, {**body, "hash": prev}))
        if not lines:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if is_new:
            fsync_dir(self.path.parent)
        return written

    def _decode(self, raw: bytes, number: int, prev: str) -> Event:
        line = raw.decode("utf-8", errors="replace")
        event: Event = self._parse(line, number)
        self._verify(line, event, number, prev)
        return event

    def _parse(self, line: str, number: int) -> Any:
        where = f"{self.path}: line {number}"
        try:
            return json.loads(line)
        except ValueError as exc:
            raise StateError(
                f"{where}: not valid JSON ({json_problem(exc)}); the log cannot be repaired "
                "automatically, restore it from git history (`git log --oneline` on the folder)"
            ) from None

    def _verify(self, line: str, event: Any, number: int, prev: str) -> None:
        where = f"{self.path}: line {number}"
        if not isinstance(event, dict):
            raise StateError(f"{where}: not a JSON object; restore the log from git history")
        if event.get("seq") != number:
            raise StateError(
                f"{where}: seq is {event.get('seq')!r}, expected {number}; events were lost or "
                "reordered, restore the log from git history"
            )
        digest = line[-_SUFFIX_LEN + len(_HASH_KEY) : -2]
        body = line[:-_SUFFIX_LEN] + "}"
        if (
            not line.endswith('"}')
            or line[-_SUFFIX_LEN : -_SUFFIX_LEN + len(_HASH_KEY)] != _HASH_KEY
            or event.get("prev_hash") != prev
            or chain_hash(prev, body) != digest
        ):
            raise StateError(
                f"{where}: hash chain broken (the line was edited or the log reordered); "
                "restore the log from git history"
            )

    def _repair_torn_tail(self, data: bytes) -> bytes:
        """Keep a complete, verifying last line; otherwise cut it (saved aside) and truncate."""
        cut = data.rfind(b"\n") + 1
        fragment = data[cut:]
        prev = GENESIS_HASH
        complete = data[:cut].splitlines()
        if complete:
            try:
                prev = json.loads(complete[-1])["hash"]
            except (ValueError, KeyError, TypeError):
                prev = ""
        try:
            self._decode(fragment, len(complete) + 1, prev)
        except StateError:
            aside = self.path.with_name(f"{self.path.name}.torn")
            with open(aside, "ab") as handle:
                handle.write(fragment + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)
                handle.flush()
                os.fsync(handle.fileno())
            return data[:cut]
        with open(self.path, "ab") as handle:
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return data + b"\n"

    def tail_lines(self, count: int) -> list[JsonObject]:
        """The last `count` events, parsed (not chain-verified), reading only the file's end."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                block = min(size, 4096)
                while True:
                    handle.seek(size - block)
                    chunk = handle.read(block)
                    lines = chunk.splitlines()
                    if len(lines) > count or block == size:
                        break
                    block = min(size, block * 4)
        except FileNotFoundError:
            return []
        wanted = lines[-count:] if block == size else lines[1:][-count:]
        events = []
        for raw in wanted:
            try:
                events.append(json.loads(raw))
            except ValueError:
                continue  # a torn tail: `somas verify` names it; a view just skips it
        return events

    def _last_line(self) -> bytes | None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                if size == 0:
                    return None
                block = min(size, 8192)
                while True:
                    handle.seek(size - block)
                    chunk = handle.read(block)
                    body = chunk[:-1] if chunk.endswith(b"\n") else chunk
                    newline = body.rfind(b"\n")
                    if newline >= 0 or block == size:
                        return body[newline + 1 :]
                    block = min(size, block * 4)
        except FileNotFoundError:
            return None
