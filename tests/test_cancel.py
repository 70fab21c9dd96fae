"""A cancelled run (SIGINT, then SIGTERM 7.5 s later, as the Actions runner does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from somas_action.cli.main import main
from tests import scenarios
from tests.scenarios import demo_output, log_of, state_of

pytestmark = pytest.mark.e2e


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_cancelled_run_is_resumable_and_nothing_is_half_written(repo: Path, tmp_path: Path) -> None:
    # The generated test sleeps while SOMAS_TEST_SLOW=1 reaches it (through validation.env: the
    # sandbox shows it nothing else of the parent's environment or files).
    slow = demo_output("implementation")
    slow["files"].append(
        {
            "path": "tests/test_slow.py",
            "content": (
                "import os\nimport time\nimport unittest\n\n\nclass SlowTest(unittest.TestCase):\n"
                "    def test_slow(self) -> None:\n"
                "        while os.environ.get('SOMAS_TEST_SLOW') == '1':\n"
                "            time.sleep(0.1)\n"
            ),
        }
    )
    recording = scenarios.make_recording(tmp_path / "rec", implementation=[{"output": slow}])
    config = repo / ".somas" / "config.yml"
    original = config.read_text()
    config.write_text(
        original.replace("builtin:demo", str(recording)) + "  env: [SOMAS_TEST_SLOW]\n"
    )
    scenarios.open_issue(repo)
    assert main(["--repo", str(repo), "start", "--issue", "1"]) == 0

    process = subprocess.Popen(
        [sys.executable, "-m", "somas_action", "--repo", str(repo), "advance", "project-1"],
        env={**os.environ, "SOMAS_TEST_SLOW": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log = scenarios.project_dir(repo) / "transitions.jsonl"
    _wait_for(
        lambda: (
            log.exists()
            and '"to_stage": "validation"' in log.read_text()
            and '"event_type": "agent_invoked", "stage": "validation"' in log.read_text()
        )
    )
    time.sleep(0.5)  # the generated tests are running now
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=7.5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    _, err = process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err

    # Nothing half-written: the chain verifies and state.json is the log's projection.
    assert main(["--repo", str(repo), "verify", "project-1"]) == 0
    last = log_of(repo)[-1]
    assert (last["event_type"], last["stage"], last["attempt"]) == (
        "run_cancelled",
        "validation",
        1,
    )
    state = state_of(repo)
    assert state["stages"]["validation"]["attempts"] == 0  # the cancelled attempt does not count
    assert state["stages"]["implementation"]["status"] == "completed"

    # The next run continues where it stopped (and the generated test is quick now).
    assert main(["--repo", str(repo), "advance", "project-1"]) == 0
    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert state["stages"]["validation"]["attempts"] == 1
    assert state["stages"]["implementation"]["attempts"] == 1
    results = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / "test_results.json").read_text()
    )
    assert (results["total"], results["passed"]) == (8, 8)
    assert [e["event_type"] for e in log_of(repo)].count("run_cancelled") == 1
