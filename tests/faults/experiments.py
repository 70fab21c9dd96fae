"""The fault experiments: each builds its trials, runs them and returns `Trial`s.

Sizes are parameters so that `make test` runs a bounded form (tests/faults/test_faults.py) and
`make faults` (bench/faults.py) the full one with the figures the issues ask for.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    LETTERS,
    LOG,
    PROJECT,
    SEQUENCE,
    STATE,
    Result,
    Snapshot,
    Somas,
    Trial,
    b64,
    chain_problems,
    copy_repo,
    count_operations,
    drive,
    invariants,
    kill_group,
    locate,
    make_template,
    parse_lines,
    read_bytes,
    timed,
    unb64,
    wait_for,
)


class Lab:
    """A scratch folder with a prepared template repository for one checkout under test."""

    def __init__(self, somas: Somas, root: Path) -> None:
        self.somas = somas
        self.root = root
        self.template = make_template(somas, root / "template")
        self._counter = 0
        self._gate: Path | None = None
        self._approved: Path | None = None

    def fresh(self, name: str) -> Path:
        """A new copy of the template."""
        self._counter += 1
        return copy_repo(self.template, self.root / f"{name}-{self._counter}")

    def gate_repo(self) -> Path:
        """A repository whose project waits at the review gate (built once)."""
        if self._gate is None:
            repo = self.fresh("gate")
            for args in SEQUENCE[:2]:
                result = self.somas.run(repo, args)
                if result.code != 0:
                    raise RuntimeError(f"{args}: {result.err}")
            self._gate = repo
        return self._gate

    def approved_repo(self) -> Path:
        """The gate repository's copy after `approve` (the approval batch is the log's last)."""
        if self._approved is None:
            repo = copy_repo(self.gate_repo(), self.root / "approved")
            result = self.somas.run(repo, ["approve", PROJECT])
            if result.code != 0:
                raise RuntimeError(f"approve: {result.err}")
            self._approved = repo
        return self._approved


# -- SIGKILL at every durable operation, and at random times -----------------------------------


def kill_points(lab: Lab, limit: int | None, rng: random.Random) -> tuple[list[int], list[int]]:
    """(operation counts per command, the points to kill at: all, or `limit` spread evenly)."""
    counts = count_operations(lab.somas, lab.template, lab.root / "count")
    total = sum(counts)
    points = list(range(1, total + 1))
    if limit is not None and limit < total:
        step = total / limit
        points = sorted({int(i * step) + 1 for i in range(limit)})
    return counts, points


def kill_trial(lab: Lab, counts: list[int], point: int) -> list[str]:
    """SIGKILL just before durable operation `point`, then recover and check."""
    repo = lab.fresh("kill")
    index, local = locate(counts, point)
    crashes = []
    for number, args in enumerate(SEQUENCE[: index + 1]):
        faults = {"SOMAS_FAULT_KILL_AT": str(local)} if number == index else {}
        result = lab.somas.run(repo, args, **faults)
        if number < index and result.code != 0:
            crashes.append(f"{args[0]} before the fault failed: {result.err.strip()[-200:]}")
        elif result.crashed:
            crashes.append(f"{args[0]}: exit {result.code}")
    acknowledged = Snapshot.take(repo)
    recovery = drive(lab.somas, repo)
    violations = crashes + recovery.crashes + invariants(lab.somas, repo, acknowledged)
    shutil.rmtree(repo, ignore_errors=True)
    return violations


def random_kill_trial(lab: Lab, rng: random.Random) -> list[str]:
    """SIGKILL a running `advance` at a random moment (agent calls slowed to open a window)."""
    repo = lab.fresh("random")
    lab.somas.run(repo, SEQUENCE[0])
    second = rng.random() < 0.3
    if second:
        for args in SEQUENCE[1:3]:
            lab.somas.run(repo, args)
    process = lab.somas.start(repo, ["advance", PROJECT], SOMAS_FAULT_AGENT_DELAY="0.15")
    time.sleep(rng.uniform(0.0, 2.5 if second else 4.0))
    kill_group(process)
    process.communicate()
    acknowledged = Snapshot.take(repo)
    recovery = drive(lab.somas, repo)
    violations = recovery.crashes + invariants(lab.somas, repo, acknowledged)
    shutil.rmtree(repo, ignore_errors=True)
    return violations


def run_kills(lab: Lab, limit: int | None, randoms: int, seed: int = 7) -> list[Trial]:
    """The SIGKILL experiment: every durable operation (or `limit` of them), then random."""
    rng = random.Random(seed)
    counts, points = kill_points(lab, limit, rng)
    trials = [timed(f"kill@{p}", kill_trial, lab, counts, p) for p in points]
    trials += [timed(f"random-{i}", random_kill_trial, lab, rng) for i in range(randoms)]
    return trials


# -- truncation: every byte of the last batch, sampled offsets in the middle ----------------


def _job(repo: Path, argv: list[str], write: Mapping[str, bytes | str | None]) -> dict[str, Any]:
    files: dict[str, str | None] = {}
    for rel, data in write.items():
        files[rel] = data if isinstance(data, str) else b64(data)
    return {
        "repo": str(repo),
        "write": files,
        "argv": argv,
        "read": [str(LOG), str(STATE)],
    }


def _cleanup_writes(repo: Path) -> dict[str, bytes | str | None]:
    """Remove what a previous trial may have left beside the project's files."""
    folder = repo / LOG.parent
    extras = [
        p
        for p in folder.iterdir()
        if p.name.startswith(("transitions.jsonl.", "state.json.", "dead_letters.json."))
    ]
    return {str(p.relative_to(repo)): None for p in extras}


def torn_batch_trials(lab: Lab, every: int = 1) -> list[Trial]:
    """Cut the approval batch at every byte, as if the writer died before state.json caught up.

    state.json is the one from before the approval, so no event of the batch was acknowledged:
    recovery must keep the batch whole or drop it whole.
    """
    gate, approved = lab.gate_repo(), lab.approved_repo()
    before_log = read_bytes(gate / LOG) or b""
    after_log = read_bytes(approved / LOG) or b""
    batch_ids = {e["id"] for e in parse_lines(after_log[len(before_log) :])}
    repo = copy_repo(approved, lab.root / "torn")
    base = {str(STATE): read_bytes(gate / STATE), str(LETTERS): read_bytes(gate / LETTERS)}
    cuts = list(range(len(before_log) + 1, len(after_log) + 1, every))
    if cuts[-1] != len(after_log):
        cuts.append(len(after_log))
    jobs = []
    for cut in cuts:
        write = {**base, str(LOG): after_log[:cut]}
        jobs.append(_job(repo, ["incident", "note", PROJECT, "--text", "torn tail trial"], write))
    started = time.monotonic()
    results = lab.somas.driver(jobs)
    seconds = (time.monotonic() - started) / max(len(jobs), 1)
    trials = []
    for cut, result in zip(cuts, results, strict=True):
        log = unb64(result["files"][str(LOG)]) or b""
        found = _command_problems(result)
        found += chain_problems(log)
        if not log.startswith(before_log):
            found.append("acknowledged events lost")
        kept = {e.get("id") for e in parse_lines(log)} & batch_ids
        if kept and kept != batch_ids:
            found.append(f"half batch kept ({len(kept)} of {len(batch_ids)} events)")
        trials.append(Trial(f"torn@{cut}", found, round(seconds, 3)))
    shutil.rmtree(repo, ignore_errors=True)
    return trials


def _command_problems(result: dict[str, Any]) -> list[str]:
    outcome = Result(result["code"], result.get("out", ""), result.get("err", ""))
    if outcome.crashed:
        return [f"exit {outcome.code}: {outcome.err.strip()[-160:]}"]
    return []


def middle_cut_trials(lab: Lab, samples: int, rng: random.Random) -> list[Trial]:
    """Cut the log in the middle while state.json counts every event: must be refused."""
    approved = lab.approved_repo()
    log = read_bytes(approved / LOG) or b""
    state = read_bytes(approved / STATE)
    last_batch = log.rstrip(b"\n").rfind(b"\n")
    last_batch = log[:last_batch].rfind(b"\n")  # keep clear of the final lines
    cuts = sorted(rng.sample(range(1, last_batch), min(samples, last_batch - 1)))
    repo = copy_repo(approved, lab.root / "middle")
    jobs = [
        _job(
            repo,
            ["incident", "note", PROJECT, "--text", "middle cut trial"],
            {str(STATE): state, str(LOG): log[:cut]},
        )
        for cut in cuts
    ]
    results = lab.somas.driver(jobs)
    trials = []
    for cut, result in zip(cuts, results, strict=True):
        found = _command_problems(result)
        after = unb64(result["files"][str(LOG)]) or b""
        if result["code"] == 0:
            found.append("a log cut in the middle was accepted (acknowledged events lost)")
        elif after != log[:cut]:
            found.append("a refused command changed the log")
        trials.append(Trial(f"middle@{cut}", found))
    shutil.rmtree(repo, ignore_errors=True)
    return trials


TAMPER_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("advance", PROJECT),
    ("incident", "note", PROJECT, "--text", "tamper trial"),
    ("pause", PROJECT),
    ("restart", PROJECT, "--stage", "release", "--no-advance"),
)


def _tampered(log: bytes, kind: str, line: int) -> bytes:
    lines = log.split(b"\n")[:-1]
    if kind == "edit":
        raw = lines[line - 1]
        # Same length, still JSON: flip one letter of the actor.
        at = raw.index(b'"actor": "') + len(b'"actor": "')
        lines[line - 1] = raw[:at] + (b"X" if raw[at : at + 1] != b"X" else b"Y") + raw[at + 1 :]
    elif kind == "delete":
        del lines[line - 1]
    else:  # insert: a copy of the line before
        lines.insert(line, lines[line - 1])
    return b"\n".join(lines) + b"\n"


PAST = {"edit": "edited", "delete": "deleted", "insert": "inserted"}


def tamper_trials(lab: Lab, samples: int, rng: random.Random) -> list[Trial]:
    """Edit, delete or insert a middle line: every state-changing command must refuse."""
    approved = lab.approved_repo()
    log = read_bytes(approved / LOG) or b""
    state = read_bytes(approved / STATE)
    total = log.count(b"\n")
    repo = copy_repo(approved, lab.root / "tamper")
    cases = [
        (kind, rng.randint(2, total - 2))
        for kind in ("edit", "delete", "insert")
        for _ in range(samples)
    ]
    jobs, keys = [], []
    for kind, line in cases:
        bad = _tampered(log, kind, line)
        for command in TAMPER_COMMANDS:
            write = {**_cleanup_writes(repo), str(STATE): state, str(LOG): bad}
            jobs.append(_job(repo, list(command), write))
            keys.append((kind, line, command[0], bad))
    results = lab.somas.driver(jobs)
    trials = []
    for (kind, line, verb, bad), result in zip(keys, results, strict=True):
        found = _command_problems(result)
        if result["code"] == 0:
            found.append(f"accepted a log with a middle line {PAST[kind]} ({verb})")
        elif unb64(result["files"][str(LOG)]) != bad:
            found.append(f"changed a tampered log ({verb})")
        elif "line" not in result["err"]:
            found.append(f"refused without naming the line ({verb})")
        trials.append(Trial(f"{kind}@{line}:{verb}", found))
    shutil.rmtree(repo, ignore_errors=True)
    return trials


# -- corrupt files ------------------------------------------------------------------------------

CORRUPT_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status", PROJECT),
    ("list",),
    ("health", PROJECT),
    ("monitor",),
    ("verify", PROJECT),
    ("advance", PROJECT),
    ("approve", PROJECT),
    ("reconstruct", PROJECT, "--check"),
    ("reconstruct", PROJECT),
    ("dead-letters", PROJECT, "list"),
    ("restart", PROJECT, "--stage", "review", "--no-advance"),
    ("pause", PROJECT),
    ("stop-all",),
)


def corruptions(lab: Lab) -> dict[str, dict[str, bytes | str | None]]:
    """Each corruption: the files to write (None deletes, "<dir>" puts a folder there)."""
    gate = lab.gate_repo()
    state = read_bytes(gate / STATE) or b""
    config = ".somas/config.yml"
    return {
        "state.json invalid UTF-8": {str(STATE): b"\xff\xfe" + state},
        "state.json is a folder": {str(STATE): "<dir>"},
        "state.json deeply nested": {str(STATE): b"[" * 200_000 + b"]" * 200_000},
        "state.json empty": {str(STATE): b""},
        "state.json a JSON array": {str(STATE): b"[1, 2]"},
        "state.json wrong shape": {str(STATE): b'{"status": 3, "last_event": []}'},
        "dead_letters.json [1,2]": {str(LETTERS): b"[1, 2]"},
        "dead_letters.json invalid UTF-8": {str(LETTERS): b"\xff[]"},
        "dead_letters.json a folder": {str(LETTERS): "<dir>"},
        "transitions.jsonl empty": {str(LOG): b""},
        "transitions.jsonl is a folder": {str(LOG): "<dir>"},
        "transitions.jsonl invalid UTF-8": {str(LOG): b"\xff\xfe\n"},
        "config.yml YAML error": {config: b"pipeline: [unclosed\n"},
    }


def corrupt_trials(lab: Lab) -> list[Trial]:
    """Every command on every corruption: one clear line (exit 1) or an answer, never exit 3."""
    gate = lab.gate_repo()
    repo = copy_repo(gate, lab.root / "corrupt")
    pristine = {
        str(STATE): read_bytes(gate / STATE),
        str(LETTERS): read_bytes(gate / LETTERS),
        str(LOG): read_bytes(gate / LOG),
        ".somas/config.yml": read_bytes(gate / ".somas/config.yml"),
    }
    jobs, keys = [], []
    for name, write in corruptions(lab).items():
        for command in CORRUPT_COMMANDS:
            files = {**_cleanup_writes(repo), **pristine, **write}
            jobs.append(_job(repo, list(command), files))
            keys.append((name, " ".join(command[:1])))
    results = lab.somas.driver(jobs)
    trials = []
    for (name, verb), result in zip(keys, results, strict=True):
        found = [f"{name}: {p}" for p in _command_problems(result)]
        trials.append(Trial(f"{name}: {verb}", found))
    shutil.rmtree(repo, ignore_errors=True)
    return trials


# -- a full disk, a read-only folder ------------------------------------------------------------


@contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A small tmpfs (needs root); raises PermissionError where it cannot be mounted."""
    folder = Path(tempfile.mkdtemp(prefix="somas-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        folder.rmdir()
        raise PermissionError(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def can_mount() -> str | None:
    """None if a tmpfs can be mounted here, else why not."""
    try:
        with tmpfs("1m"):
            return None
    except PermissionError as exc:
        return str(exc)


def _fill(folder: Path, leave: int) -> Path:
    """A balloon file that leaves `leave` bytes free on the filesystem of `folder`."""
    balloon = folder / "balloon"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(balloon, "wb") as handle:
        remaining = max(free - leave, 0)
        chunk = b"\0" * (1 << 20)
        try:
            while remaining > 0:
                remaining -= handle.write(chunk[: min(remaining, len(chunk))])
        except OSError:
            pass
    return balloon


def enospc_trial(lab: Lab, leave: int) -> list[str]:
    """Run the pipeline with `leave` bytes free; then free the disk and finish it."""
    with tmpfs("24m") as mount:
        repo = copy_repo(lab.template, mount / "repo")
        balloon = _fill(mount, leave)
        found = []
        for args in SEQUENCE:
            result = lab.somas.run(repo, args)
            if result.crashed:
                found.append(f"full disk, {args[0]}: exit {result.code}: {result.err[-200:]}")
        acknowledged = Snapshot.take(repo)
        balloon.unlink()
        recovery = drive(lab.somas, repo)
        found += recovery.crashes + invariants(lab.somas, repo, acknowledged)
        return found


def enospc_trials(lab: Lab, levels: list[int]) -> list[Trial]:
    """ENOSPC at many fill levels."""
    return [timed(f"enospc@{leave}", enospc_trial, lab, leave) for leave in levels]


def readonly_trial(lab: Lab) -> list[str]:
    """A read-only project folder (EROFS): one clear line, nothing half-written."""
    with tmpfs("24m") as mount:
        repo = copy_repo(lab.gate_repo(), mount / "repo")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        found = []
        for args in (("approve", PROJECT), ("advance", PROJECT), ("status", PROJECT)):
            result = lab.somas.run(repo, args)
            if result.crashed:
                found.append(f"read-only, {args[0]}: exit {result.code}: {result.err[-200:]}")
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        recovery = drive(lab.somas, repo)
        found += recovery.crashes + invariants(lab.somas, repo, Snapshot.take(repo))
        return found


# -- clock steps and signal pairs ---------------------------------------------------------------


def clock_trial(lab: Lab, first: float, second: float) -> list[str]:
    """Run to the gate with the clock at `first` seconds off, finish at `second`."""
    repo = lab.fresh("clock")
    found = []
    for args in SEQUENCE[:2]:
        result = lab.somas.run(repo, args, SOMAS_FAULT_CLOCK_OFFSET=str(first))
        found += [f"{args[0]}: exit {result.code}"] if result.crashed else []
    recovery = drive(lab.somas, repo, SOMAS_FAULT_CLOCK_OFFSET=str(second))
    found += recovery.crashes + invariants(lab.somas, repo, Snapshot.take(repo))
    shutil.rmtree(repo, ignore_errors=True)
    return found


def signal_pair_trial(lab: Lab, during: str, gap: float = 0.03) -> list[str]:
    """SIGINT then SIGTERM `gap` seconds later, during an agent call or the test run."""
    repo = lab.fresh("signal")
    lab.somas.run(repo, SEQUENCE[0])
    delay = "1.5" if during == "agent" else "0"
    process = lab.somas.start(repo, ["advance", PROJECT], SOMAS_FAULT_AGENT_DELAY=delay)
    log = repo / LOG
    marker = (
        b'"event_type": "agent_invoked", "stage": "validation"'
        if during == "tests"
        else b'"event_type": "agent_invoked", "stage": "specification"'
    )
    found = []
    if not wait_for(lambda: marker in (read_bytes(log) or b""), 60):
        kill_group(process)
        process.communicate()
        return [f"never reached the {during}"]
    time.sleep(0.4 if during == "agent" else 0.2)
    kill_group(process, signal.SIGINT)
    time.sleep(gap)
    kill_group(process, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(process)
        _, err = process.communicate()
        found.append("did not stop within 60 s of the signals")
    if process.returncode != 130:
        found.append(f"exit {process.returncode} after SIGINT+SIGTERM (want 130)")
    if "Traceback" in err:
        found.append("traceback after the signals")
    acknowledged = Snapshot.take(repo)
    recovery = drive(lab.somas, repo)
    found += recovery.crashes + invariants(lab.somas, repo, acknowledged)
    shutil.rmtree(repo, ignore_errors=True)
    return found


def signal_trials(lab: Lab, each: int) -> list[Trial]:
    """Signal pairs during agent calls and during the generated project's test run."""
    return [
        timed(f"signals-{during}-{i}", signal_pair_trial, lab, during)
        for during in ("agent", "tests")
        for i in range(each)
    ]


def clock_trials(lab: Lab) -> list[Trial]:
    """Clock steps of one day back and forward between runs."""
    day = 86_400.0
    return [
        timed("clock-back", clock_trial, lab, 0.0, -day),
        timed("clock-forward-then-back", clock_trial, lab, day, 0.0),
    ]


Experiment = Callable[[Lab], list[Trial]]


def write_json(path: Path, data: Any) -> None:
    """Save figures for the note."""
    path.write_text(json.dumps(data, indent=2) + "\n")
