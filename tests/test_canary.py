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

import pytest

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
