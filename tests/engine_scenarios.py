"""Scenarios for the engine tests: a project branch to work on, engines to run on it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from somas_action.providers.engines.catalog import McpEndpoint
from somas_action.providers.engines.process import Sandbox, run_in_process_group
from somas_action.providers.engines.prompt import build_prompt
from somas_action.providers.engines.runner import (
    EngineOutcome,
    EngineRun,
    resolve_executable,
    run_engine,
)
from somas_action.providers.engines.spec import EngineSpec
from somas_action.providers.engines.worktree import changed_contents, scratch_checkout
from tests.scenarios import git

BRANCH = "somas/project-1"
FAKE_ENGINE = Path(__file__).parent / "fakes" / "fake_engine.py"
GREET = 'def greet(name):\n    return "hi " + name\n'


def make_project(path: Path) -> Path:
    """A repository whose project branch holds `greet.py` and its test."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "greet.py").write_text(GREET)
    (path / "test_greet.py").write_text(
        "from greet import greet\n\n\ndef test_greet():\n    assert greet('a').endswith('a')\n"
    )
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "branch", BRANCH)
    return path


def put_fake_engine_on_path(bin_dir: Path) -> str:
    """Link the fake engine as `fake-engine` into `bin_dir`; return the new PATH value."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "fake-engine").symlink_to(FAKE_ENGINE)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def run_once(
    repo: Path,
    run_dir: Path,
    spec: EngineSpec,
    key: str,
    *,
    tools_dir: Path | None = None,
    mcp: McpEndpoint | None = None,
    sandbox: Sandbox = run_in_process_group,
) -> tuple[EngineOutcome, list[tuple[str, bytes | None]]]:
    """Run `spec` once on the project branch; the outcome and the changed files' contents."""
    executable = resolve_executable(spec, tools_dir or run_dir / "tools")
    prompt = build_prompt("Make greet say hello.", {"issue": {"number": 1, "title": "hello"}})
    run = EngineRun(spec, executable, prompt, key, run_dir, mcp)
    with scratch_checkout(repo, BRANCH, run_dir / "tree") as scratch:
        outcome = run_engine(run, scratch, sandbox)
        return outcome, changed_contents(scratch, outcome.diff)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until_dead(pid: int, polls: int = 100) -> bool:
    """Poll (bounded: `polls` times 50 ms) until `pid` is gone; True if it went."""
    for _ in range(polls):
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)
