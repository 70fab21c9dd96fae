"""The fault suite's machinery: run a SOMAS checkout, break things, check what must hold.

Everything here talks to SOMAS only through its command line (a subprocess per command, or
many commands in one `driver.py` process), and checks the files with code of its own (its own
hash-chain verifier, its own batch rules). So the same experiments measure any checkout: the
branch's starting commit ("before") and the current code ("after").

Invariants checked after each trial (`invariants`):
- the hash chain is intact and seq is contiguous;
- no acknowledged event is lost: every event `state.json` counted when the fault struck is
  still in the log, byte for byte;
- `state.json` is the log's projection (`somas verify` and `somas reconstruct --check`);
- no half batch (the batch markers, and the pairs every batch shape has);
- no duplicated side effect (two project-branch commits with one tree, a pull request twice, a
  stage completed twice, a status comment twice);
- no stage attempt beyond `max_attempts`; no exit code 3; the project completes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
INJECT = HERE / "inject"
PROJECT = "project-1"
PROJECT_DIR = Path(".somas/projects") / PROJECT
LOG = PROJECT_DIR / "transitions.jsonl"
STATE = PROJECT_DIR / "state.json"
LETTERS = PROJECT_DIR / "dead_letters.json"
TITLE = "Add a slugify helper for page URLs"
# The full pipeline on the demo recording: open, run to the review gate, approve, finish.
SEQUENCE: tuple[tuple[str, ...], ...] = (
    ("start", "--issue", "1", "--title", TITLE),
    ("advance", PROJECT),
    ("approve", PROJECT),
    ("advance", PROJECT),
)
GENESIS = "0" * 64
HASH_KEY = b', "hash": "'
# Pairs every batch shape has: the first event type is always directly followed by the second.
PAIRS = {
    "stage_started": ("agent_invoked",),
    "stage_completed": ("checkpoint_created",),
    "human_gate_approved": ("stage_completed",),
    "stage_failed": ("dead_letter_recorded",),
    "agent_output_accepted": ("artifacts_written",),
}


@dataclass(frozen=True)
class Result:
    """One command's exit code and output."""

    code: int
    out: str
    err: str

    @property
    def crashed(self) -> bool:
        """Exit 3, a traceback, or more than one line of error for a refusal."""
        text = self.err
        return (
            self.code == 3
            or "Traceback" in text
            or "unexpected error" in text
            or (self.code == 1 and len(text.strip().splitlines()) > 1)
        )


# One command of a trial, at most (a SIGKILL shows as code -9, a hang as a failed trial).
RUN_TIMEOUT_SECONDS = 300.0


class Somas:
    """A SOMAS checkout, run as `python -m somas_action` with the fault hooks on the path."""

    def __init__(self, code: Path = ROOT, python: str = sys.executable) -> None:
        self.code = code.resolve()
        self.python = python

    def env(self, **faults: str) -> dict[str, str]:
        """The environment of a run: only local adapters, state committed like the demo."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "SOMAS_", "RUNNER_")) and k != "PYTHONPATH"
        }
        return {
            **base,
            "PYTHONPATH": f"{INJECT}{os.pathsep}{self.code}",
            "SOMAS_ACTOR": "local:faults",
            "SOMAS_COMMIT_STATE": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            **faults,
        }

    def argv(self, repo: Path, args: Sequence[str]) -> list[str]:
        """The command line of one `somas` command."""
        return [self.python, "-m", "somas_action", "--repo", str(repo), *args]

    def run(self, repo: Path, args: Sequence[str], **faults: str) -> Result:
        """Run one command to its end (a SIGKILL shows as code -9)."""
        done = subprocess.run(
            self.argv(repo, args),
            env=self.env(**faults),
            cwd=self.code,  # `python -m` puts the working folder first on sys.path
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, repo: Path, args: Sequence[str], **faults: str) -> subprocess.Popen[str]:
        """Start one command in its own process group (so signals reach only it)."""
        return subprocess.Popen(
            self.argv(repo, args),
            env=self.env(**faults),
            cwd=self.code,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def driver(self, jobs: list[dict[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
        """Many quick trials in one process: each job writes files, runs a command, reads files.

        A job is `{"repo", "write": {path: base64 | None | "<dir>"}, "argv", "read": [path]}`.
        """
        script = (
            "import base64, json, os, shutil, sys\n"
            f"sys.path.insert(0, {str(HERE)!r})\n"
            "from driver import run_one\n"
            "out = []\n"
            "for job in json.load(sys.stdin):\n"
            "    repo = job['repo']\n"
            "    for rel, data in job.get('write', {}).items():\n"
            "        path = os.path.join(repo, rel)\n"
            "        if os.path.isdir(path) and not os.path.islink(path):\n"
            "            shutil.rmtree(path)\n"
            "        elif os.path.lexists(path):\n"
            "            os.unlink(path)\n"
            "        if data == '<dir>':\n"
            "            os.makedirs(path)\n"
            "        elif data is not None:\n"
            "            with open(path, 'wb') as f: f.write(base64.b64decode(data))\n"
            "    result = run_one(['--repo', repo, *job['argv']]) if job['argv'] else {}\n"
            "    files = {}\n"
            "    for rel in job.get('read', []):\n"
            "        path = os.path.join(repo, rel)\n"
            "        files[rel] = (base64.b64encode(open(path, 'rb').read()).decode()\n"
            "                      if os.path.isfile(path) else None)\n"
            "    result['files'] = files\n"
            "    out.append(result)\n"
            "print(json.dumps(out))\n"
        )
        done = subprocess.run(
            [self.python, "-c", script],
            input=json.dumps(jobs),
            env=self.env(SOMAS_COMMIT_STATE="0"),
            cwd=self.code,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"driver failed: {done.stderr[-2000:]}")
        results: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
        return results


def b64(data: bytes | None) -> str | None:
    """Bytes as the driver's file contents."""
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    """The driver's file contents as bytes."""
    return None if text is None else base64.b64decode(text)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; stdout."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def make_template(somas: Somas, folder: Path) -> Path:
    """The repository the demo recording was made on (its library, the default `.somas/`),
    committed on main; with `--code` pointing at an older checkout, that checkout's own
    demo repository (`prepare_repo`), or an empty one with `somas init` before it had one."""
    script = (
        "import sys; from pathlib import Path\n"
        "from somas_action.cli.commands.demo import prepare_repo\n"
        "prepare_repo(Path(sys.argv[1]))\n"
    )
    made = subprocess.run(
        [somas.python, "-c", script, str(folder)],
        env=somas.env(),
        cwd=somas.code,
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        folder.mkdir(parents=True, exist_ok=True)
        git(folder, "init", "-q", "-b", "main")
        (folder / "README.md").write_text("# fault trials\n")
        result = somas.run(folder, ["init", "--no-workflow"])
        if result.code != 0:
            raise RuntimeError(f"somas init failed: {result.err}")
        git(folder, "add", "-A")
        git(folder, "commit", "-q", "-m", "initial")
    git(folder, "config", "user.name", "Faults")
    git(folder, "config", "user.email", "faults@example.invalid")
    return folder


def copy_repo(template: Path, target: Path) -> Path:
    """A fresh copy of a prepared repository (git history included)."""
    shutil.copytree(template, target, symlinks=True)
    return target


# -- reading what a trial left ---------------------------------------------------------------


def read_bytes(path: Path) -> bytes | None:
    """A file's bytes, None when it is missing or not a file."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Every complete line of a log, parsed (unparseable ones as `{}`)."""
    events = []
    for raw in data.split(b"\n")[:-1]:
        try:
            value = json.loads(raw)
        except ValueError:
            value = {}
        events.append(value if isinstance(value, dict) else {})
    return events


def chain_problems(data: bytes) -> list[str]:
    """Our own check of the hash chain and seq of a log's bytes (first problem only)."""
    if data and not data.endswith(b"\n"):
        return ["the log ends in a torn line"]
    prev = GENESIS
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        cut = raw.rfind(HASH_KEY)
        try:
            event = json.loads(raw)
        except ValueError:
            return [f"line {number} is not JSON"]
        if cut < 0 or not isinstance(event, dict):
            return [f"line {number} is not an event"]
        body = raw[:cut] + b"}"
        digest = hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()
        if event.get("seq") != number or event.get("prev_hash") != prev:
            return [f"line {number}: seq/prev_hash break the chain"]
        if event.get("hash") != digest:
            return [f"line {number}: hash does not match the line"]
        prev = digest
    return []


def batch_problems(events: list[dict[str, Any]]) -> list[str]:
    """Half batches: batch markers that stop short, or a batch shape's pair broken."""
    found = []
    for index, event in enumerate(events):
        kind = event.get("event_type")
        following = events[index + 1] if index + 1 < len(events) else {}
        if kind in PAIRS and following.get("event_type") not in PAIRS[kind]:
            found.append(f"seq {event.get('seq')}: {kind} without {PAIRS[kind][0]} after it")
        remaining = event.get("batch_remaining")
        if remaining and following.get("batch_remaining", 0) != remaining - 1:
            found.append(f"seq {event.get('seq')}: batch cut short ({remaining} more expected)")
    pipeline = next(
        (e["data"]["pipeline"] for e in events if e.get("event_type") == "project_created"), None
    )
    if pipeline:
        for index, event in enumerate(events):
            last_checkpoint = (
                event.get("event_type") == "checkpoint_created"
                and event.get("stage") == pipeline[-1]
            )
            after = events[index + 1] if index + 1 < len(events) else {}
            if last_checkpoint and after.get("event_type") != "project_completed":
                found.append(f"seq {event.get('seq')}: last checkpoint without project_completed")
    return found


@dataclass
class Snapshot:
    """What was acknowledged when a fault struck: the events `state.json` counted."""

    seq: int = 0
    log_prefix: bytes = b""

    @classmethod
    def take(cls, repo: Path) -> Snapshot:
        """Read state.json's count and the log's lines up to it."""
        state = read_bytes(repo / STATE)
        log = read_bytes(repo / LOG) or b""
        try:
            seq = int(json.loads(state or b"")["last_event"]["seq"])
        except (ValueError, KeyError, TypeError):
            return cls()
        lines = log.split(b"\n")
        return cls(seq, b"".join(line + b"\n" for line in lines[:seq]))


def duplicate_problems(repo: Path, events: list[dict[str, Any]]) -> list[str]:
    """Side effects done twice: commits with one tree, pull requests, completions, comments."""
    found = []
    branch = f"refs/heads/somas/{PROJECT}"
    try:
        trees = git(repo, "log", "--format=%T %P", branch).splitlines()
    except RuntimeError:
        trees = []
    parents: dict[str, int] = {}
    for line in trees:
        tree = line.split()[0]
        parents[tree] = parents.get(tree, 0) + 1
    doubled = [t for t, n in parents.items() if n > 1]
    if doubled:
        found.append(f"{len(doubled)} tree(s) committed twice on somas/{PROJECT}")
    pulls = read_bytes(repo / ".somas/tracker/pulls.json")
    if pulls:
        heads = [p.get("head") for p in json.loads(pulls)]
        if len(heads) != len(set(heads)):
            found.append("a pull request recorded twice in pulls.json")
    kinds = [e.get("event_type") for e in events]
    completed = [e.get("stage") for e in events if e.get("event_type") == "stage_completed"]
    if len(completed) != len(set(completed)):
        found.append("a stage completed twice")
    if kinds.count("project_completed") > 1:
        found.append("project_completed twice")
    issue = read_bytes(repo / ".somas/tracker/issues/1.json")
    if issue:
        bodies = [c["body"] for c in json.loads(issue).get("comments", [])]
        if sum("<!-- somas:status -->" in b for b in bodies) > 1:
            found.append("two status comments on the issue")
    return found


def attempt_problems(events: list[dict[str, Any]]) -> list[str]:
    """Stage attempts beyond the stage's max_attempts."""
    found = []
    for event in events:
        if event.get("event_type") == "stage_started":
            limit = (event.get("data") or {}).get("max_attempts")
            if limit and (event.get("attempt") or 0) > limit:
                found.append(
                    f"seq {event['seq']}: {event['stage']} attempt {event['attempt']} of {limit}"
                )
    return found


def consistency_problems(somas: Somas, repo: Path) -> list[str]:
    """`somas verify` and `somas reconstruct --check` of the code under test."""
    results = somas.driver(
        [
            {"repo": str(repo), "argv": ["verify", PROJECT]},
            {"repo": str(repo), "argv": ["reconstruct", PROJECT, "--check"]},
        ]
    )
    found = []
    if results[0]["code"] != 0:
        found.append("verify fails: " + _first_fail(results[0]["out"] + results[0]["err"]))
    if results[1]["code"] != 0:
        found.append("reconstruct --check differs")
    return found


def _first_fail(text: str) -> str:
    lines = [line for line in text.splitlines() if "FAIL" in line or "error" in line]
    return (lines or [text.strip()[:200]])[0][:200]


def invariants(
    somas: Somas, repo: Path, acknowledged: Snapshot, *, complete: bool = True
) -> list[str]:
    """Every invariant of the suite, as a list of violations (empty: all held)."""
    data = read_bytes(repo / LOG) or b""
    found = chain_problems(data)
    if acknowledged.seq and not data.startswith(acknowledged.log_prefix):
        found.append(f"acknowledged events lost (state.json counted {acknowledged.seq})")
    events = parse_lines(data)
    found += batch_problems(events)
    found += duplicate_problems(repo, events)
    found += attempt_problems(events)
    found += consistency_problems(somas, repo)
    if complete:
        try:
            status = json.loads(read_bytes(repo / STATE) or b"")["status"]
        except (ValueError, KeyError, TypeError):
            status = "unreadable"
        if status != "completed":
            found.append(f"did not complete (status {status})")
    return found


# -- driving a project to its end ------------------------------------------------------------


@dataclass
class Drive:
    """The commands a recovery ran and what they answered."""

    results: list[Result] = field(default_factory=list)

    @property
    def crashes(self) -> list[str]:
        """One line per command that crashed (exit 3 or a traceback)."""
        return [f"exit {r.code}: {r.err.strip()[-200:]}" for r in self.results if r.crashed]


def status_of(repo: Path) -> str | None:
    """The status state.json says, None if it cannot be read."""
    try:
        return str(json.loads(read_bytes(repo / STATE) or b"")["status"])
    except (ValueError, KeyError, TypeError):
        return None


def drive(somas: Somas, repo: Path, limit: int = 10, **faults: str) -> Drive:
    """Run the project to completion as an operator would: advance, approve at the gate."""
    done = Drive()
    reopen = False  # the log holds no complete event: the answer says to start again
    for _ in range(limit):
        if reopen or not (repo / LOG).exists():
            done.results.append(somas.run(repo, SEQUENCE[0], **faults))
            reopen = False
            continue
        status = status_of(repo)
        if status == "completed":
            break
        verb = "approve" if status == "waiting" else "advance"
        result = somas.run(repo, [verb, PROJECT], **faults)
        done.results.append(result)
        reopen = "somas start --issue" in result.err
        if status == "failed" or (
            result.code == 1 and verb == "advance" and "failed" in result.out
        ):
            break
    return done


def count_operations(somas: Somas, template: Path, work: Path) -> list[int]:
    """Durable operations of each command of SEQUENCE, on a copy of the template."""
    repo = copy_repo(template, work)
    counts = []
    for number, args in enumerate(SEQUENCE):
        count_file = work.parent / f"{work.name}.count-{number}"
        result = somas.run(repo, args, SOMAS_FAULT_COUNT_FILE=str(count_file))
        if result.code != 0:
            raise RuntimeError(f"{' '.join(args)} failed while counting: {result.err}")
        counts.append(int(count_file.read_text()))
    shutil.rmtree(repo)
    return counts


def locate(counts: list[int], point: int) -> tuple[int, int]:
    """(command index, operation within it) of the `point`-th durable operation (1-based)."""
    for index, count in enumerate(counts):
        if point <= count:
            return index, point
        point -= count
    raise ValueError("point beyond the sequence")


@dataclass
class Trial:
    """One trial's outcome."""

    name: str
    violations: list[str]
    seconds: float = 0.0


def timed(name: str, fn: Any, *args: Any) -> Trial:
    """Run one trial function, timing it."""
    started = time.monotonic()
    violations = fn(*args)
    return Trial(name, violations, round(time.monotonic() - started, 2))


def kill_group(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Signal a command's whole process group (git and pytest children included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def wait_for(predicate: Any, timeout: float) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _kind_of(violation: str) -> str:
    """A violation's kind, for counting: the text before its details."""
    if "without" in violation or "cut short" in violation or "half batch" in violation:
        return "half batch"
    if violation.startswith("seq ") and "attempt" in violation:
        return "attempt beyond max_attempts"
    exit_code = re.search(r"exit (-?\d+)", violation)
    error = re.search(r"(\w+Error|\w+Exception)", violation)
    if exit_code and not violation.startswith("exit -"):
        head = violation.split(": exit")[0] if ": exit" in violation else ""
        return (
            f"exit {exit_code.group(1)}"
            + (f" ({error.group(1)})" if error else "")
            + (f" on {head}" if head and len(head) < 40 else "")
        )
    return re.sub(r"\d+", "N", violation.split(":")[0])[:70]


def summarize(trials: Iterable[Trial]) -> dict[str, Any]:
    """Counts of trials and violations, and the violations by kind."""
    trials = list(trials)
    kinds: dict[str, int] = {}
    for trial in trials:
        for violation in trial.violations:
            key = _kind_of(violation)
            kinds[key] = kinds.get(key, 0) + 1
    return {
        "trials": len(trials),
        "violating_trials": sum(1 for t in trials if t.violations),
        "violations": sum(len(t.violations) for t in trials),
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "seconds": round(sum(t.seconds for t in trials), 1),
    }
