"""The canary: agent-written test code hunts for SOMAS's secrets and finds none.

SOMAS runs as a separate process with GITHUB_TOKEN, OPENAI_API_KEY and ANTHROPIC_API_KEY in its
real environment (so /proc/<pid>/environ holds them), a $HOME with git credentials and a
$RUNNER_TEMP holding the token, as on a runner. The branch adds tests/fixtures/canary's probe.
With bubblewrap the probe finds nothing and reaches nothing; with the fallback it may find
things, the result says why, and the redaction keeps the canary out of everything returned.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from somas_action.sandbox.isolation import Sandbox
from tests.repo_fixtures import CANARY, SECRETS, FixtureRepo, parent_env, toolchain_env

PROBE = Path(__file__).parent / "fixtures" / "canary" / "probe_test.py"
DRIVER = """
import json, sys
from pathlib import Path
from somas_action.validation.gate import validate_branch
from somas_action.core.settings import ValidationSettings
args = json.loads(sys.argv[1])
settings = ValidationSettings(
    setup=None, command="python3 probe_test.py", junit=None, timeout_minutes=2,
    per_test_timeout_seconds=60, env=(), isolation=args["isolation"], read_only_paths=(),
)
run = validate_branch(Path(args["repo"]), base_ref="main", branch_ref=args["branch"],
                      settings=settings)
Path(args["out"]).write_text(json.dumps(run.artifact))
print("validated", run.artifact["sandbox"]["kind"])
"""


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        """Stop accepting."""
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """The server the probe tries to reach."""
    server = Listener()
    yield server
    server.close()


def somas_home(tmp_path: Path) -> Path:
    """SOMAS's $HOME with a git credential store holding the token, as after a checkout."""
    home = tmp_path / "somas-home"
    home.mkdir()
    token = SECRETS["GITHUB_TOKEN"]
    (home / ".git-credentials").write_text(f"https://x-access-token:{token}@github.com\n")
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    return home


def canary_run(tmp_path: Path, isolation: str, port: int) -> tuple[dict[str, object], str]:
    """Run validation of a branch carrying the probe from a separate SOMAS process."""
    home = somas_home(tmp_path)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    (runner_temp / "token.txt").write_text(SECRETS["GITHUB_TOKEN"])
    probe = PROBE.read_text()
    for key, value in {
        "CANARY": CANARY,
        "SOMAS_VENV_PYTHON": sys.executable,
        "RUNNER_TEMP_FILE": str(runner_temp / "token.txt"),
        "SOMAS_HOME_CREDENTIALS": str(home / ".git-credentials"),
        "SERVER_PORT": str(port),
    }.items():
        probe = probe.replace("{{" + key + "}}", value)
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    repo = FixtureRepo(repo_dir)
    repo.git("init", "-q", "-b", "main")
    (repo_dir / "README.md").write_text("# a repository\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "base")
    branch = repo.branch("somas/project-1", {"probe_test.py": probe})
    out = tmp_path / "artifact.json"
    args = {"repo": str(repo_dir), "branch": branch, "out": str(out), "isolation": isolation}
    env = {
        **parent_env(),
        **toolchain_env(),
        "HOME": str(home),
        "RUNNER_TEMP": str(runner_temp),
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), done.stdout + done.stderr


def found(artifact: dict[str, object]) -> dict[str, str]:
    """Probe that found something -> what it found (as returned, i.e. redacted)."""
    failures = artifact["failures"]
    assert isinstance(failures, list)
    return {str(f["test"]): str(f["message"]) for f in failures}


@pytest.mark.subprocess
def test_the_canary_finds_nothing_and_reaches_nothing_in_bubblewrap(
    tmp_path: Path, listener: Listener, sandbox: Sandbox
) -> None:
    if sandbox.info.kind != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox.info.warnings[0]}")

    artifact, output = canary_run(tmp_path, "bubblewrap", listener.port)

    assert artifact["sandbox"] == {"kind": "bubblewrap", "network_isolated": True, "warnings": []}
    assert artifact["result_source"] == "output"
    assert artifact["passed"] == 6, artifact["failures"]
    assert artifact["failed"] == 0
    assert listener.accepted == 0
    assert CANARY not in json.dumps(artifact)
    assert CANARY not in output


@pytest.mark.subprocess
def test_the_fallback_says_what_it_could_not_hide_and_still_returns_no_canary(
    tmp_path: Path, listener: Listener
) -> None:
    artifact, output = canary_run(tmp_path, "process-group", listener.port)

    sandbox = artifact["sandbox"]
    assert isinstance(sandbox, dict)
    assert sandbox["kind"] == "process-group"
    assert sandbox["network_isolated"] is False
    assert any("reach the network" in w for w in sandbox["warnings"])
    assert any("/proc" in w for w in sandbox["warnings"])
    text = json.dumps(artifact)
    # the probe did find secrets here (a same-user process's environment, the files) ...
    assert isinstance(artifact["failed"], int) and artifact["failed"] >= 2
    assert "***" in text
    # ... and none of them is in what SOMAS returns
    assert CANARY not in text
    assert CANARY not in output
    evidence = found(artifact)
    assert "GITHUB_TOKEN=***" in evidence["other processes"]  # SOMAS's own /proc environ
    assert "files outside the sandbox" in evidence
    assert "environment" not in evidence  # the environment itself was still scrubbed


# -- the same probe through `somas handle-event`, end to end -----------------------------------

# The probe as test code a hostile implementer could commit: a unittest module (the demo
# repository's suite runs under unittest), one test per place a secret could be. It looks for
# the secrets' names, never their values, so the branch it is pushed in carries no canary.
PROBE_MODULE = """import glob
import os
import socket
import subprocess
import unittest

NAMES = ("GITHUB_TOKEN", "SOMAS_GITHUB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def _secrets_in(text, separator):
    return [p for p in text.split(separator) if p.split("=", 1)[0] in NAMES]


class ProbeTest(unittest.TestCase):
    def test_environment(self):
        self.assertEqual([f"{k}={v}" for k, v in os.environ.items() if k in NAMES], [])

    def test_other_processes(self):
        found = []
        for path in glob.glob("/proc/[0-9]*/environ"):
            try:
                with open(path, "rb") as handle:
                    found += _secrets_in(handle.read().decode(errors="replace"), "\\0")
            except OSError:
                continue
        self.assertEqual(found, [])

    def test_git_credentials(self):
        found = []
        for command in (["git", "config", "--global", "--list"], ["git", "credential", "fill"]):
            try:
                done = subprocess.run(command, input="protocol=https\\nhost=github.com\\n\\n",
                                      capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                continue
            found += [line for line in done.stdout.splitlines() if "password" in line
                      or "token" in line]
        self.assertEqual(found, [])

    def test_files_outside_the_sandbox(self):
        found = []
        for path in ({files}):
            try:
                with open(path, "rb") as handle:
                    found.append(handle.read(200).decode(errors="replace"))
            except OSError:
                continue
        self.assertEqual(found, [])

    def test_network(self):
        try:
            with socket.create_connection(("127.0.0.1", {port}), timeout=3) as conn:
                conn.sendall(b"hello from the sandbox\\n")
        except OSError:
            return
        self.fail("reached 127.0.0.1:{port}")
"""

EVENT_STAGES: list[dict[str, Any]] = [
    {
        "name": "implementation",
        "agent": "implementer",
        "quality_gates": [{"type": "output_field", "field": "files"}],
    },
    {
        "name": "validation",
        "agent": "validator",
        "max_retries": 1,
        "quality_gates": [{"type": "tests_passed", "min_tests": 1}],
    },
]


def _event_repo(tmp_path: Path, probe: str) -> Path:
    """A repository on GitHub whose recorded implementer commits the probe with its change."""
    from tests import github_env, scenarios

    repo = github_env.repo_with_origin(tmp_path)
    implementation = scenarios.demo_output("implementation")
    implementation["files"].append({"path": "tests/test_probe.py", "content": probe})
    recording = scenarios.make_recording(
        tmp_path / "rec", implementation=[{"output": implementation}]
    )
    config = repo / ".somas" / "config.yml"
    data = yaml.safe_load(config.read_text())
    data["pipeline"]["stages"] = EVENT_STAGES
    data["agent_provider"]["recording"] = str(recording)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    scenarios.git(repo, "commit", "-q", "-am", "a two-stage pipeline on a recording")
    scenarios.git(repo, "push", "-q", "origin", "main")
    return repo


@pytest.mark.subprocess
@pytest.mark.fakes
def test_the_probe_committed_by_an_agent_finds_nothing_through_handle_event(
    tmp_path: Path, listener: Listener, github: Any
) -> None:
    from tests import github_env
    from tests.fakes import payloads

    home = somas_home(tmp_path)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    (runner_temp / "token.txt").write_text(SECRETS["GITHUB_TOKEN"])
    files = ", ".join(repr(str(p)) for p in (runner_temp / "token.txt", home / ".git-credentials"))
    probe = PROBE_MODULE.replace("{files}", files + ",").replace("{port}", str(listener.port))
    assert CANARY not in probe
    repo = _event_repo(tmp_path, probe)
    github.add_issue(7, "Limit the length of page slugs", "Keep slugs short.", ("somas:project",))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payloads.issue_labeled(github.repository, 7)))
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    env = {
        **parent_env(),
        **github_env.actions_env(github, "issues", event, "4242"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "HOME": str(home),
        "RUNNER_TEMP": str(runner_temp),
    }
    done = subprocess.run(
        [sys.executable, "-m", "somas_action", "--repo", str(repo), "handle-event"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode in (0, 1), done.stderr[-3000:]
    project = repo / ".somas" / "projects" / "project-7"
    results = json.loads((project / "artifacts" / "test_results.json").read_text())
    if results["sandbox"]["kind"] == "bubblewrap":
        # Nothing found, nothing reached: the probe's five tests pass with the suite.
        probes = [t for t in results["added_tests"] if "ProbeTest" in t]
        assert len(probes) == 5 and results["failed"] == 0, results["failures"]
        assert listener.accepted == 0
        assert json.loads((project / "state.json").read_text())["status"] == "completed"
    # Wherever the run wrote or said anything, the canary is not there.
    written = [p.read_text(errors="replace") for p in project.rglob("*") if p.is_file()]
    assert not [text for text in written if CANARY in text]
    origin = tmp_path / "origin.git"
    history = subprocess.run(
        ["git", "-C", str(origin), "log", "-p", "--all"], capture_output=True, text=True, check=True
    ).stdout
    assert "test_probe.py" in history and CANARY not in history  # the state branch, the PR branch
    assert CANARY not in json.dumps(github.snapshot())  # comments, labels, pull requests
    assert CANARY not in done.stdout + done.stderr  # the step's log
    assert CANARY not in summary.read_text() + outputs.read_text()
