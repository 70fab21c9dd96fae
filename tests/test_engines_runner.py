"""The engine runner drives a fake engine through every ending and keeps its work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.core.errors import ConfigError
from somas_action.providers.engines.runner import outcome_observation, resolve_executable
from somas_action.providers.engines.spec import EngineSpec
from somas_action.providers.engines.worktree import ChangedFile
from tests.engine_scenarios import (
    alive,
    make_project,
    put_fake_engine_on_path,
    run_once,
    wait_until_dead,
)

OWN_KEY = "sk-own-ENGINE-KEY-1f2e3d"
PARENT_SECRETS = {
    "GITHUB_TOKEN": "ghs_parent_GITHUB_TOKEN_77a1",
    "GH_TOKEN": "ghp_parent_GH_TOKEN_77a2",
    "ANTHROPIC_API_KEY": "sk-ant-parent-ANTHROPIC_77a3",
    "OPENAI_API_KEY": "sk-parent-OPENAI_77a4",
    "AWS_SECRET_ACCESS_KEY": "parent-AWS_77a5",
}
EDIT = 'greet.py=def greet(name):\n    return "hello " + name'


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project repository, with the fake engine on PATH and secrets in SOMAS's env."""
    monkeypatch.setenv("PATH", put_fake_engine_on_path(tmp_path / "bin"))
    for name, value in PARENT_SECRETS.items():
        monkeypatch.setenv(name, value)
    return make_project(tmp_path / "repo")


def fake(*args: str, timeout: float = 60) -> EngineSpec:
    """The fake engine as a `command` engine whose key travels in OPENAI_API_KEY."""
    return EngineSpec(
        engine="command",
        model="fake-model",
        command="fake-engine",
        key_env="OPENAI_API_KEY",
        extra_args=args,
        max_turns=5,
        timeout_seconds=timeout,
    )


@pytest.mark.subprocess
def test_a_finished_run_returns_the_diff_usage_and_session(repo: Path, tmp_path: Path) -> None:
    outcome, files = run_once(repo, tmp_path / "run", fake("--edit", EDIT), OWN_KEY)

    assert (outcome.kind, outcome.exit_code, outcome.parks) == ("success", 0, False)
    assert outcome.diff.files == (ChangedFile("greet.py", "modified"),)
    assert '-    return "hi " + name\n+    return "hello " + name\n' in outcome.diff.patch
    assert files == [("greet.py", b'def greet(name):\n    return "hello " + name\n')]
    assert (outcome.usage.turns, outcome.usage.cost_usd) == (2, 0.0125)
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (2400, 160)
    assert outcome.session_id == "fake-session-0001"
    assert outcome.last_words == "Changed the greeting as asked."
    assert len(outcome.transcript.read_text().splitlines()) == 4
    event = outcome_observation(outcome)
    assert (event.event_type, event.status) == ("engine_run_finished", "success")
    assert event.data["changed"] == [{"path": "greet.py", "status": "modified"}]
    assert event.data["usage"] == {
        "input_tokens": 2400, "output_tokens": 160, "cost_usd": 0.0125, "turns": 2,
    }  # fmt: skip


@pytest.mark.subprocess
def test_the_engine_sees_its_own_key_and_no_other_secret(repo: Path, tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    outcome, _ = run_once(repo, tmp_path / "run", fake("--env-dump", str(dump)), OWN_KEY)

    seen = json.loads(dump.read_text())
    assert outcome.kind == "success"
    assert sorted(seen) == [
        "HOME", "LANG", "NO_COLOR", "OPENAI_API_KEY", "PATH", "SOMAS_MAX_TURNS", "SOMAS_MODEL",
        "SOMAS_PROMPT_FILE", "TERM", "TMPDIR",
    ]  # fmt: skip
    assert seen["OPENAI_API_KEY"] == OWN_KEY
    leaked = [v for v in PARENT_SECRETS.values() if any(v in s for s in seen.values())]
    assert leaked == []
    assert seen["HOME"] == str(tmp_path / "run" / "home")
    assert ".venv" not in seen["PATH"]


@pytest.mark.subprocess
def test_the_prompt_reaches_the_engine_on_stdin(repo: Path, tmp_path: Path) -> None:
    outcome, _ = run_once(repo, tmp_path / "run", fake(), OWN_KEY)

    init = json.loads(outcome.transcript.read_text().splitlines()[0])
    prompt = (tmp_path / "run" / "prompt.md").read_text()
    assert init["prompt_chars"] == len(prompt)
    assert prompt.startswith("Make greet say hello.\n\n## Inputs\n\n{")


@pytest.mark.subprocess
def test_a_timeout_kills_the_process_group_and_keeps_the_work(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    spec = fake("--edit", EDIT, "--mode", "hang", "--child-pid", str(pid_file), timeout=2)

    outcome, files = run_once(repo, tmp_path / "run", spec, OWN_KEY)

    assert (outcome.kind, outcome.exit_code, outcome.parks) == ("timeout", None, True)
    assert [f.path for f in outcome.diff.files] == ["greet.py"]
    assert files[0][1] == b'def greet(name):\n    return "hello " + name\n'
    assert wait_until_dead(int(pid_file.read_text()))
    # The transcript written before the kill is kept.
    assert "turn 2" in outcome.transcript.read_text()


@pytest.mark.subprocess
def test_a_child_left_running_after_success_is_killed_too(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    outcome, _ = run_once(repo, tmp_path / "run", fake("--child-pid", str(pid_file)), OWN_KEY)

    assert outcome.kind == "success"
    assert wait_until_dead(int(pid_file.read_text()))
    assert not alive(int(pid_file.read_text()))


@pytest.mark.parametrize(
    ("mode", "kind", "reason"),
    [
        ("max-turns", "max_turns", "turn limit"),
        ("quota", "quota", "credit balance is too low"),
        ("rate-limit", "rate_limited", "HTTP 429"),
    ],
)
@pytest.mark.subprocess
def test_limits_park_with_the_work_so_far(
    repo: Path, tmp_path: Path, mode: str, kind: str, reason: str
) -> None:
    outcome, _ = run_once(repo, tmp_path / "run", fake("--edit", EDIT, "--mode", mode), OWN_KEY)

    assert (outcome.kind, outcome.parks) == (kind, True)
    assert reason in outcome.reason
    assert [f.path for f in outcome.diff.files] == ["greet.py"]


@pytest.mark.subprocess
def test_a_crash_is_a_failure_that_names_the_error(repo: Path, tmp_path: Path) -> None:
    outcome, _ = run_once(repo, tmp_path / "run", fake("--edit", EDIT, "--mode", "crash"), OWN_KEY)

    assert (outcome.kind, outcome.exit_code, outcome.parks) == ("crash", 3, False)
    assert outcome.reason == "the engine failed: RuntimeError: engine blew up"
    assert not outcome.diff.empty


@pytest.mark.subprocess
def test_an_engine_that_says_nothing_but_exits_zero_succeeded(repo: Path, tmp_path: Path) -> None:
    outcome, _ = run_once(repo, tmp_path / "run", fake("--mode", "silent"), OWN_KEY)

    assert outcome.kind == "success"
    assert outcome.diff.empty


@pytest.mark.subprocess
def test_added_and_deleted_files_are_in_the_diff(repo: Path, tmp_path: Path) -> None:
    spec = fake("--edit", "pkg/new.py=X = 1", "--delete", "test_greet.py")
    outcome, files = run_once(repo, tmp_path / "run", spec, OWN_KEY)

    assert outcome.diff.files == (
        ChangedFile("pkg/new.py", "added"),
        ChangedFile("test_greet.py", "deleted"),
    )
    assert files == [("pkg/new.py", b"X = 1\n"), ("test_greet.py", None)]


@pytest.mark.subprocess
def test_a_key_the_engine_prints_is_blanked_in_its_output(repo: Path, tmp_path: Path) -> None:
    outcome, _ = run_once(repo, tmp_path / "run", fake("--echo-key", "OPENAI_API_KEY"), OWN_KEY)

    assert "debug: using key [redacted]" in outcome.stderr_tail
    assert OWN_KEY not in (tmp_path / "run" / "stderr.log").read_text()


@pytest.mark.subprocess
def test_the_scratch_checkout_has_no_remote_and_leaves_the_branch_alone(
    repo: Path, tmp_path: Path
) -> None:
    from tests.scenarios import git

    before = git(repo, "rev-parse", "somas/project-1")
    run_once(repo, tmp_path / "run", fake("--edit", EDIT), OWN_KEY)

    assert git(tmp_path / "run" / "tree", "remote") == ""
    assert git(repo, "rev-parse", "somas/project-1") == before


def test_a_command_that_is_not_on_path_is_a_one_line_error(tmp_path: Path) -> None:
    spec = EngineSpec(engine="command", model="m", command="no-such-engine-xyz")

    with pytest.raises(ConfigError, match=r"^engine.command: 'no-such-engine-xyz' is not"):
        resolve_executable(spec, tmp_path)
