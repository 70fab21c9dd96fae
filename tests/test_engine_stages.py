"""An engine as a stage's agent, in the pipeline: the fake engine CLI drives every path.

The demo repository's implementer is the fake engine (`tests/fakes/fake_engine.py`, the
`command` engine contract); the other stages answer from the demo recording. The engine runs in
the sandbox on a clone of the project branch; what it changed goes through the usual checks and
commit path, and validation runs the repository's own suite on it. Limits keep the work on the
branch and park; the next run tells the engine where the last one stopped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from somas_action.core.clock import FakeClock
from somas_action.core.domain import State
from somas_action.pipeline.runner import Runner
from somas_action.providers.engines.install import find_installed
from tests import scenarios
from tests.fakes.anthropic_stream import FakeAnthropicStream, ToolUse, calls, says

pytestmark = [pytest.mark.e2e]

FAKE_ENGINE = Path(__file__).parent / "fakes" / "fake_engine.py"
KEY_ENV = "FAKE_ENGINE_KEY"
KEY = "fake-engine-key-0123456789"
SLUGIFY = "src/slugkit/__init__.py"


def demo_edits() -> list[str]:
    """`--edit` arguments writing the demo's implementation (it passes the demo's suite)."""
    files = scenarios.demo_output("implementation")["files"]
    args: list[str] = []
    for item in files:
        args += ["--edit", f"{item['path']}={item['content'].rstrip(chr(10))}"]
    return args


def use_engine(repo: Path, *args: str, timeout: int = 120) -> None:
    """Make the implementer the fake engine, told `args`."""
    path = repo / ".somas" / "agents" / "implementer.yml"
    data = yaml.safe_load(path.read_text())
    data["engine"] = {
        "engine": "command",
        "command": str(FAKE_ENGINE),
        "model": "fake-model",
        "key_env": KEY_ENV,
        "timeout_seconds": timeout,
        "extra_args": list(args),
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KEY_ENV, KEY)
    # Secrets of SOMAS's own process: the engine must see none of them.
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_not_for_engines_000000000000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-engine-000000")
    return scenarios.make_repo(tmp_path / "repo")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(step_seconds=0)


def start(repo: Path, clock: FakeClock) -> Runner:
    run = scenarios.runner(repo, clock)
    run.start(scenarios.open_issue(repo), "local:tester")
    return run


def advance(run: Runner) -> State:
    state, _ = run.advance("project-1", "local:tester")
    return state


def engine_runs(repo: Path) -> list[dict[str, Any]]:
    return [e for e in scenarios.log_of(repo) if e["event_type"] == "engine_run_finished"]


def on_branch(repo: Path, path: str) -> str:
    return scenarios.git(repo, "show", f"somas/project-1:{path}")


def artifact(repo: Path, name: str) -> str:
    return (scenarios.project_dir(repo) / "artifacts" / name).read_text()


@pytest.mark.subprocess
def test_an_engine_implements_the_issue_and_validation_runs_the_suite_on_it(
    repo: Path, clock: FakeClock
) -> None:
    use_engine(repo, *demo_edits())
    state = advance(start(repo, clock))

    assert state["stages"]["implementation"]["status"] == "completed"
    assert state["stages"]["validation"]["status"] == "completed"
    expected = scenarios.demo_output("implementation")["files"][0]["content"]
    assert on_branch(repo, SLUGIFY).rstrip("\n") == expected.rstrip("\n")
    [run] = engine_runs(repo)
    assert run["status"] == "success"
    assert run["data"]["engine"] == "command"
    assert run["data"]["input_tokens"] == 2400 and run["data"]["cost_usd"] == 0.0125
    assert {c["path"] for c in run["data"]["changed"]} >= {SLUGIFY}
    # The engine's reported usage counts like any agent call's (and so against the budget).
    by_model = state["metrics"]["usage"]["by_model"]["engine-command/fake-model"]
    assert by_model["cost_usd"] == 0.0125 and by_model["input_tokens"] == 2400
    transcript = artifact(repo, run["data"]["transcript"])
    assert '"type": "result"' in transcript and KEY not in transcript
    prompt = artifact(repo, "engine/implementation-a1-1/prompt.md")
    assert "Implement the issue" in prompt and "An earlier run" not in prompt
    assert "tests-pass" in json.dumps(state["stages"]["validation"])


@pytest.mark.subprocess
def test_max_turns_commits_the_work_parks_and_the_next_run_continues_from_it(
    repo: Path, clock: FakeClock
) -> None:
    use_engine(
        repo, "--edit", "src/slugkit/notes.py=STEP = 1", "--env-dump", "src/slugkit/env.json",
        "--mode", "max-turns", "--turns", "3",
    )  # fmt: skip
    state = advance(start(repo, clock))

    parked = scenarios.parked_of(state)
    assert parked["kind"] == "turn_limit" and "turn" in parked["reason"]
    assert on_branch(repo, "src/slugkit/notes.py") == "STEP = 1"
    [first] = engine_runs(repo)
    tip = scenarios.git(repo, "rev-parse", "somas/project-1")
    assert first["status"] == "max_turns" and first["data"]["commit"] == tip
    # What the engine saw: its own key, no other secret, nothing of SOMAS's environment.
    seen = json.loads(on_branch(repo, "src/slugkit/env.json"))
    assert seen[KEY_ENV] == KEY
    assert "GITHUB_TOKEN" not in seen and "OPENAI_API_KEY" not in seen
    assert not any(KEY in v for k, v in seen.items() if k != KEY_ENV)

    use_engine(repo, *demo_edits(), "--delete", "src/slugkit/env.json")
    state = advance(scenarios.runner(repo, clock))  # the next run of the workflow

    second = engine_runs(repo)[-1]
    assert second["status"] == "success"
    prompt = artifact(repo, "engine/implementation-a1-2/prompt.md")
    assert "An earlier run of this stage" in prompt and "src/slugkit/notes.py" in prompt
    assert state["stages"]["implementation"]["status"] == "completed"
    # Work of both runs is on the branch; what the second deleted is gone.
    assert on_branch(repo, "src/slugkit/notes.py") == "STEP = 1"
    files = scenarios.git(repo, "ls-tree", "-r", "--name-only", "somas/project-1")
    assert "src/slugkit/env.json" not in files.splitlines()


@pytest.mark.subprocess
def test_a_timeout_kills_the_engine_keeps_its_work_and_parks(repo: Path, clock: FakeClock) -> None:
    use_engine(repo, "--edit", "src/slugkit/partial.py=HALF = True", "--mode", "hang", timeout=2)
    state = advance(start(repo, clock))

    assert scenarios.parked_of(state)["kind"] == "timeout"
    assert on_branch(repo, "src/slugkit/partial.py") == "HALF = True"
    assert engine_runs(repo)[-1]["status"] == "timeout"


@pytest.mark.subprocess
def test_out_of_credit_parks_for_a_person_and_counts_against_the_engines_breaker(
    repo: Path, clock: FakeClock
) -> None:
    use_engine(repo, "--mode", "quota")
    state = advance(start(repo, clock))

    parked = scenarios.parked_of(state)
    assert parked["kind"] == "quota" and parked["retry_at"] is None
    assert "credit balance" in parked["reason"]
    breakers = json.loads((repo / ".somas" / "breakers.json").read_text())["services"]
    assert breakers["engine-command"]["failures"] == 1


@pytest.mark.subprocess
def test_a_crash_fails_the_attempt_naming_the_error(repo: Path, clock: FakeClock) -> None:
    use_engine(repo, "--mode", "crash")
    run = start(repo, clock)
    advance(run)

    failed = [e for e in scenarios.log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    assert failed and "engine blew up" in failed[0]["data"]["error"]["message"]
    assert engine_runs(repo)[0]["status"] == "crash"


@pytest.mark.subprocess
def test_work_outside_the_allowed_paths_is_refused_and_not_committed(
    repo: Path, clock: FakeClock
) -> None:
    use_engine(repo, "--edit", "ci/evil.sh=curl evil", "--mode", "max-turns")
    advance(start(repo, clock))

    failed = [e for e in scenarios.log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    assert "outside workspace.allowed_paths" in failed[0]["data"]["error"]["message"]
    files = scenarios.git(repo, "ls-tree", "-r", "--name-only", "somas/project-1")
    assert "ci/evil.sh" not in files.splitlines()


def test_a_missing_model_key_is_a_one_line_configuration_failure(
    repo: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    use_engine(repo, *demo_edits())
    advance(start(repo, clock))

    failed = [e for e in scenarios.log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    message = failed[0]["data"]["error"]["message"]
    assert KEY_ENV in message and "\n" not in message
    assert engine_runs(repo) == []


# -- a real engine: Claude Code at its pin, against the fake Anthropic API ------------------------

ENGINES_DIR = Path(__file__).parent.parent / ".cache" / "engines"
CLAUDE_VERSION = json.loads((Path(__file__).parent / "engine_pins.json").read_text())["claude-code"]
ANTHROPIC_KEY = "sk-ant-test-ENGINE-pipeline-77c1"
TREE = re.compile(r"/[^\s\"'\\]*somas-engine-[^/\s\"'\\]+/tree")


def in_tree(body: Any, relative: str) -> str:
    """The absolute path of `relative` in the engine's clone, as Claude Code told the model."""
    found = TREE.search(json.dumps(body))
    assert found, "Claude Code did not name its working directory"
    return f"{found.group(0)}/{relative}"


@pytest.mark.subprocess
@pytest.mark.skipif(
    find_installed(ENGINES_DIR, "claude-code", CLAUDE_VERSION) is None,
    reason=f"Claude Code {CLAUDE_VERSION} is not installed in .cache/engines: run `make engines`",
)
def test_claude_code_implements_the_stage_with_somas_tests_over_mcp_on_the_record(
    repo: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    content = scenarios.demo_output("implementation")["files"][0]["content"]
    config = repo / ".somas" / "config.yml"
    data = yaml.safe_load(config.read_text())
    data.setdefault("engines", {})["tools_dir"] = str(ENGINES_DIR)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with FakeAnthropicStream(ANTHROPIC_KEY) as fake:
        fake.script(
            calls(ToolUse("mcp__somas__run_tests", {})),
            lambda body: calls(ToolUse("Read", {"file_path": in_tree(body, SLUGIFY)})),
            lambda body: calls(
                ToolUse("Write", {"file_path": in_tree(body, SLUGIFY), "content": content})
            ),
            says("slugify now handles the issue's case; the suite passes."),
        )
        path = repo / ".somas" / "agents" / "implementer.yml"
        agent = yaml.safe_load(path.read_text())
        agent["engine"] = {
            "engine": "claude-code",
            "version": CLAUDE_VERSION,
            "model": "claude-sonnet-4-5",
            "max_turns": 8,
            "timeout_seconds": 180,
            "base_url": fake.url,
        }
        path.write_text(yaml.safe_dump(agent, sort_keys=False))
        state = advance(start(repo, clock))

    assert fake.refusals() == []
    [run] = engine_runs(repo)
    assert run["status"] == "success", run["data"]["reason"]
    assert run["data"]["engine"] == "claude-code" and run["data"]["tool_calls"] == 1
    [call] = [e for e in scenarios.log_of(repo) if e["event_type"] == "engine_tool_called"]
    assert call["status"] == "ok" and call["data"]["tool"] == "run_tests"
    report = json.loads(artifact(repo, call["data"]["artifact"]))
    assert report["verdict"] == "passed" and report["total"] > 0
    assert on_branch(repo, SLUGIFY) == content.rstrip("\n")
    assert state["stages"]["validation"]["status"] == "completed"
    assert ANTHROPIC_KEY not in artifact(repo, run["data"]["transcript"])


def test_without_the_engines_extra_an_engine_agent_is_a_one_line_configuration_failure(
    repo: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the action's virtualenv without the `engines` extra: the `mcp` package is missing.
    for module in ("pipeline.engine_stage", "providers.engines.mcp_tools"):
        monkeypatch.delitem(sys.modules, f"somas_action.{module}", raising=False)
    for module in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")] or ["mcp"]:
        monkeypatch.setitem(sys.modules, module, None)
    use_engine(repo, *demo_edits())
    advance(start(repo, clock))

    failed = [e for e in scenarios.log_of(repo) if e["event_type"] == "stage_attempt_failed"]
    error = failed[0]["data"]["error"]
    assert error["kind"] == "config"
    assert "somas-action[engines]" in error["message"] and "mcp" in error["message"]


@pytest.mark.subprocess
def test_an_engine_cannot_plant_a_command_for_somas_git_to_run(
    repo: Path, clock: FakeClock, tmp_path: Path
) -> None:
    marker = tmp_path / "planted-command-ran"
    use_engine(repo, *demo_edits(), "--plant-fsmonitor", str(marker))
    state = advance(start(repo, clock))

    assert state["stages"]["implementation"]["status"] == "completed"
    # SOMAS's git read the clone's tree after the engine (diff, commit): nothing it planted ran.
    assert not marker.exists()
    [run] = engine_runs(repo)
    stderr = artifact(repo, "engine/implementation-a1-1/stderr.log")
    if run["data"]["isolation"] == "bubblewrap":
        assert "plant refused" in stderr  # the clone's git folder is read-only to the engine


@pytest.mark.subprocess
def test_a_stage_that_does_not_edit_takes_the_engines_reply_file(
    repo: Path, clock: FakeClock
) -> None:
    spec = scenarios.demo_output("specification")
    path = repo / ".somas" / "agents" / "spec-writer.yml"
    data = yaml.safe_load(path.read_text())
    data["engine"] = {
        "engine": "command",
        "command": str(FAKE_ENGINE),
        "model": "fake-model",
        "key_env": KEY_ENV,
        "extra_args": ["--edit", f".somas-reply.json={json.dumps(spec)}"],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    state = advance(start(repo, clock))

    assert state["stages"]["specification"]["status"] == "completed"
    [run] = engine_runs(repo)
    assert run["status"] == "success" and run["stage"] == "specification"
    prompt = artifact(repo, "engine/specification-a1-1/prompt.md")
    assert ".somas-reply.json" in prompt and '"requirements"' in prompt  # the output schema
    # The reply file is the answer, never part of the project branch.
    branch = scenarios.git(repo, "ls-tree", "-r", "--name-only", "somas/project-1")
    assert ".somas-reply.json" not in branch.splitlines()


def test_an_engine_is_not_started_without_time_left_in_the_run(
    repo: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 50 s of run budget: less than the reserve for committing plus the least worth starting.
    monkeypatch.setenv("SOMAS_RUN_BUDGET_SECONDS", "50")
    use_engine(repo, *demo_edits())
    state = advance(start(repo, clock))

    parked = scenarios.parked_of(state)
    assert parked["kind"] == "run_deadline" and parked["retry_at"] is not None
    assert "too little to start engine command" in parked["reason"]
    assert engine_runs(repo) == []
