"""The append-only, hash-chained `transitions.jsonl`: the single source of truth.

Each line is one JSON object whose last member is `"hash"`; the hash covers the previous
event's hash and every byte of the line before that member, so verifying the chain never
re-serialises JSON.

A batch (the events of one decision) is one `write` and one fsync. Every event of a batch but
the last carries `"batch_remaining": <events after it in the batch>`, so a batch cut short by a
crash or a full disk is recognisable even when the cut falls on a line boundary; a log written
before the marker existed reads every line as a batch of its own.

Appends name the tail they were computed from (`Tail`: seq, hash, byte length and a running
CRC-32 of those bytes) and fail with `LogMoved` when the file does not end there. The
caller holds the project's lock (`state.locks.project_lock`) around the check and the write.
Reading never writes: repairs belong to the commands that write (`ProjectStore.settle`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from somas_action.core.domain import Event, EventDraft, JsonObject
from somas_action.core.errors import LogMoved, StateError
from somas_action.state.jsonio import fsync_dir, json_problem

GENESIS_HASH = "0" * 64
BATCH_KEY = "batch_remaining"
_HASH_KEY = ', "hash": "'
_HASH_KEY_BYTES = _HASH_KEY.encode()
_KEY_LEN = len(_HASH_KEY_BYTES)
_SUFFIX_LEN = len(_HASH_KEY) + 64 + 2  # , "hash": "<64 hex>"}
_CHUNK = 1 << 20
RESTORE_HINT = "restore the log from git history (`git log --oneline` on the project folder)"


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
    """Where the log ends: last seq and hash, its byte length and a CRC-32 of those bytes."""

    seq: int
    hash: str
    offset: int
    crc32: int


EMPTY_TAIL = Tail(seq=0, hash=GENESIS_HASH, offset=0, crc32=0)


@dataclass(frozen=True)
class LogEnd:
    """What the last bytes of the log say, read without reading the whole log (flat cost)."""

    size: int
    seq: int  # seq of the last complete line (0: none, or it is not an event)
    hash: str
    offset: int  # where that line ends (just after its newline)
    fragment: bytes  # bytes after the last newline (a torn write); usually empty


class BadLine(StateError):
    """A line of the log that is not the event the chain expects; `number` names it."""

    def __init__(self, message: str, number: int, offset: int) -> None:
        super().__init__(message)
        self.number = number
        self.offset = offset


def crc_of(path: Path, length: int) -> int:
    """CRC-32 of the first `length` bytes of a file (C speed, read in 1 MiB blocks)."""
    crc = 0
    with open(path, "rb") as handle:
        remaining = length
        while remaining > 0:
            block = handle.read(min(_CHUNK, remaining))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
    return crc


def verified_event(path: Path, raw: bytes, number: int, prev: str, offset: int) -> Event:
    """Parse one line and check its place in the chain; a bad line names itself."""
    where = f"{path}: line {number}"
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise BadLine(
            f"{where}: not valid JSON ({json_problem(exc)}); the log cannot be repaired "
            f"automatically, {RESTORE_HINT}",
            number,
            offset,
        ) from None
    except RecursionError:
        raise BadLine(f"{where}: nested too deeply; {RESTORE_HINT}", number, offset) from None
    if not isinstance(event, dict):
        raise BadLine(f"{where}: not a JSON object; {RESTORE_HINT}", number, offset)
    if event.get("seq") != number:
        raise BadLine(
            f"{where}: seq is {event.get('seq')!r}, expected {number}; events were lost, "
            f"inserted or reordered, {RESTORE_HINT}",
            number,
            offset,
        )
    cut = len(raw) - _SUFFIX_LEN
    if (
        cut < 1
        or raw[cut : cut + len(_HASH_KEY_BYTES)] != _HASH_KEY_BYTES
        or not raw.endswith(b'"}')
        or event.get("prev_hash") != prev
        or hashlib.sha256(prev.encode() + b"\n" + raw[:cut] + b"}").hexdigest() != event.get("hash")
    ):
        raise BadLine(
            f"{where}: hash chain broken (the line was edited or the log reordered); "
            f"{RESTORE_HINT}",
            number,
            offset,
        )
    return cast(Event, event)


@dataclass
class LogScan:
    """A streaming, verified read of the log from a known tail, one closed batch at a time.

    Iterating yields complete batches (lists of verified events) and keeps nothing else;
    afterwards `tail` is where the last complete batch ends (with its running CRC-32),
    `pending` holds the verified lines of a batch that was never closed (cut short), and
    `fragment` the bytes after the last newline (a torn line). A bad line raises `BadLine`.
    """

    path: Path
    start: Tail = EMPTY_TAIL
    tail: Tail = EMPTY_TAIL
    pending: list[Event] = field(default_factory=list)
    fragment: bytes = b""

    def __iter__(self) -> Iterator[list[Event]]:
        self.tail = self.start
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below, across the yields
        except FileNotFoundError:
            return
        try:
            yield from self._batches(handle)
        finally:
            handle.close()

    def _batches(self, handle: BinaryIO) -> Iterator[list[Event]]:
        read = handle.read
        handle.seek(self.start.offset)
        seq, prev, offset = self.start.seq, self.start.hash, self.start.offset
        prev_bytes = prev.encode()
        crc = self.start.crc32
        batch: list[Event] = []
        self.pending = batch
        leftover = b""
        while block := read(_CHUNK):
            data = leftover + block if leftover else block
            end = data.rfind(b"\n") + 1
            leftover = data[end:]
            view = memoryview(data)
            done = 0  # bytes of `data` already in `crc`
            position = 0
            lines = data[:end].split(b"\n")[:-1]
            sha256, key, key_len, suffix_len = (
                hashlib.sha256,
                _HASH_KEY_BYTES,
                _KEY_LEN,
                _SUFFIX_LEN,
            )
            for raw, event in zip(lines, _decoded(lines), strict=True):
                seq += 1
                # The check of `verified_event`, inlined: this loop runs once per event.
                cut = len(raw) - suffix_len
                if not (
                    type(event) is dict
                    and event.get("seq") == seq
                    and event.get("prev_hash") == prev
                    and cut > 0
                    and raw[cut : cut + key_len] == key
                    and raw[-2:] == b'"}'
                    and sha256(prev_bytes + b"\n" + raw[:cut] + b"}").hexdigest() == event["hash"]
                ):
                    verified_event(self.path, raw, seq, prev, offset + position)  # names it
                position += len(raw) + 1
                prev = event["hash"]
                prev_bytes = raw[-66:-2]
                batch.append(event)
                if BATCH_KEY not in event:
                    crc = zlib.crc32(view[done:position], crc)
                    done = position
                    self.tail = Tail(seq, prev, offset + position, crc)
                    yield batch
                    batch = []
                    self.pending = batch
            crc = zlib.crc32(view[done:end], crc)  # lines of a batch still open
            offset += end
        self.fragment = leftover


def _decoded(lines: list[bytes]) -> list[Any]:
    """Every line parsed, in one call to the C decoder for the whole block (twice as fast as a
    call per line); a block with a bad line is parsed line by line, a bad one as None."""
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
        if len(values) == len(lines):
            return cast(list[Any], values)
    except (ValueError, RecursionError):
        pass
    parsed: list[Any] = []
    for raw in lines:
        try:
            parsed.append(json.loads(raw))
        except (ValueError, RecursionError):
            parsed.append(None)
    return parsed


class EventLog:
    """One project's `transitions.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        """Whether the log file exists."""
        return self.path.exists()

    def scan(self, start: Tail = EMPTY_TAIL) -> LogScan:
        """A streaming, verified read from `start` (see LogScan)."""
        return LogScan(self.path, start)

    def read(self) -> list[Event]:
        """Every event of every complete batch, chain verified; writes nothing.

        A torn last line or a batch cut short is left out (and left on disk: the next command
        that writes decides what to do with it).
        """
        events: list[Event] = []
        with gc_paused():
            for batch in self.scan():
                events.extend(batch)
        return events

    def end(self) -> LogEnd:
        """The last complete line's seq, hash and end, and any torn bytes after it."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                block = min(size, 8192)
                while True:
                    handle.seek(size - block)
                    chunk = handle.read(block)
                    newline = chunk.rfind(b"\n")
                    body_end = newline
                    previous = chunk.rfind(b"\n", 0, newline) if newline >= 0 else -1
                    if previous >= 0 or block == size:
                        break
                    block = min(size, block * 4)
        except FileNotFoundError:
            return LogEnd(0, 0, GENESIS_HASH, 0, b"")
        if newline < 0:
            return LogEnd(size, 0, GENESIS_HASH, 0, chunk)
        last = chunk[previous + 1 : body_end]
        offset = size - block + newline + 1
        seq, digest = _seq_and_hash(last)
        return LogEnd(size, seq, digest, offset, chunk[newline + 1 :])

    def append(self, drafts: Iterable[EventDraft], expected: Tail) -> tuple[list[Event], Tail]:
        """Append drafts as one batch after `expected` (one write, fsync); the events and tail.

        The caller holds the project lock. If the file does not end at `expected` (another
        writer appended, or it was cut), nothing is written and LogMoved is raised. If the
        write fails (a full disk), the file is cut back to `expected` before the error goes up.
        """
        lines, written = self._encode(list(drafts), expected)
        if not lines:
            return [], expected
        self.path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._check_end(fd, expected)
            payload = "".join(line + "\n" for line in lines).encode()
            try:
                _write_all(fd, payload)
                os.fsync(fd)
            except BaseException:
                _cut_back(fd, expected.offset)
                raise
        finally:
            os.close(fd)
        if is_new:
            fsync_dir(self.path.parent)
        last = written[-1]
        crc = zlib.crc32(payload, expected.crc32)
        return written, Tail(last["seq"], last["hash"], expected.offset + len(payload), crc)

    def _encode(self, drafts: list[EventDraft], expected: Tail) -> tuple[list[str], list[Event]]:
        lines: list[str] = []
        written: list[Event] = []
        seq, prev = expected.seq, expected.hash
        for index, draft in enumerate(drafts):
            seq += 1
            # `seq` first and `hash` last: the line's layout is part of the hash chain.
            body: JsonObject = {"seq": seq, **{k: v for k, v in draft.items() if k != "seq"}}
            remaining = len(drafts) - index - 1
            if remaining:
                body[BATCH_KEY] = remaining
            body["prev_hash"] = prev
            line, prev = encode_event(body)
            lines.append(line)
            written.append(cast(Event, {**body, "hash": prev}))
        return lines, written

    def _check_end(self, fd: int, expected: Tail) -> None:
        size = os.fstat(fd).st_size
        if size == expected.offset and (size == 0 or _ends_with_hash(fd, size, expected.hash)):
            return
        end = self.end()
        raise LogMoved(
            f"{self.path}: the log moved on since this command read it (now seq {end.seq}, "
            f"{size} bytes; read at seq {expected.seq}, {expected.offset} bytes); "
            "reloading and deciding again"
        )

    def cut(self, offset: int, aside: bytes) -> None:
        """Cut the log back to `offset`, keeping what is cut in `transitions.jsonl.torn`."""
        if aside:
            torn = self.path.with_name(f"{self.path.name}.torn")
            with open(torn, "ab") as handle:
                handle.write(aside if aside.endswith(b"\n") else aside + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        with open(self.path, "r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())

    def tail_lines(self, count: int) -> list[JsonObject]:
        """The last `count` events, parsed (not chain-verified), reading only the file's end."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
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
                value = json.loads(raw)
            except (ValueError, RecursionError):
                continue  # a torn tail: `somas verify` names it; a view just skips it
            if isinstance(value, dict):
                events.append(value)
        return events


def _seq_and_hash(line: bytes) -> tuple[int, str]:
    """The seq and hash of a log line, from its first and last bytes (0 if it is no event)."""
    if not line.startswith(b'{"seq": ') or not line.endswith(b'"}') or len(line) < _SUFFIX_LEN:
        return 0, GENESIS_HASH
    digits = line[8 : line.find(b",", 8)]
    digest = line[-66:-2]
    if not digits.isdigit() or line[-_SUFFIX_LEN:-66] != _HASH_KEY_BYTES:
        return 0, GENESIS_HASH
    return int(digits), digest.decode("ascii", errors="replace")


def _ends_with_hash(fd: int, size: int, expected_hash: str) -> bool:
    tail = os.pread(fd, min(size, 80), size - min(size, 80))
    return tail.endswith(f'{expected_hash}"}}\n'.encode())


def _cut_back(fd: int, offset: int) -> None:
    """Nothing half-recorded: a failed or interrupted write leaves no partial batch behind."""
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    except OSError:
        pass  # the next load sees a batch cut short and drops it whole


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        done = os.write(fd, view)
        view = view[done:]
