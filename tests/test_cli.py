"""The `somas` command line: exit codes, one-line errors, the demo, the runbook's commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from somas_action.cli.crash_log import CRASH_DIR_ENV, write_crash_log
from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import scenarios


def somas(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), *args])


@pytest.mark.e2e
def test_start_advance_approve_status_through_the_cli(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert somas(repo, "start", "--issue", "1", "--title", "Add slugify", "--body", "x") == 0
    assert "project-1: pending at intake" in capsys.readouterr().out
    assert somas(repo, "advance", "project-1") == 0
    out = capsys.readouterr().out
    assert "human_gate_opened" in out and "waiting at the review human gate" in out
    assert somas(repo, "approve", "project-1", "--actor", "local:alice") == 0
    assert somas(repo, "advance", "project-1") == 0
    assert somas(repo, "status") == 0
    listing = capsys.readouterr().out.splitlines()[-1]
    assert listing.startswith("project-1") and "completed" in listing
    assert somas(repo, "status", "project-1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"


@pytest.mark.e2e
def test_advance_a_completed_project_is_a_no_op(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    run = scenarios.run_to_gate(repo, clock)
    run.approve("project-1", "local:alice")
    run.advance("project-1", "local:t")
    before = (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes()
    assert somas(repo, "advance", "project-1") == 0
    assert "is completed; nothing to advance" in capsys.readouterr().out
    assert (scenarios.project_dir(repo) / "transitions.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["advance", "project-9"], "project project-9 not found"),
        (["advance", "../../etc"], "invalid project id '../../etc'"),
        (["start", "--issue", "4"], "local issue #4 does not exist"),
        (["start", "--issue", "0"], "--issue: 0 is not an issue number"),
        (["approve", "project-9"], "project project-9 not found"),
        (["reconstruct", "project-9"], "no log; nothing to reconstruct from"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert somas(repo, *args) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_broken_config_is_reported_without_a_traceback(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".somas" / "config.yml").write_text("pipeline:\n  stages: {oops\n")
    assert somas(repo, "start", "--issue", "1", "--title", "x") == 1
    err = capsys.readouterr().err
    assert err.startswith("somas: error: ") and ".somas/config.yml: line" in err
    assert not (repo / ".somas" / "projects" / "project-1").exists()


def test_unexpected_errors_exit_3_with_a_log(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mocker: MockerFixture
) -> None:
    from somas_action.cli.commands import status

    mocker.patch.object(status, "run", side_effect=ZeroDivisionError("division by zero"))
    assert somas(repo, "status") == 3
    err = capsys.readouterr().err
    assert "unexpected error: ZeroDivisionError" in err and "somas-crash-" in err
    # conftest points $SOMAS_CRASH_DIR at the test's own folder
    [log] = (tmp_path / scenarios.CRASH_LOGS).glob("somas-crash-*.log")
    assert f"(details in {log};" in err
    assert log.read_text().rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_crash_dir_that_cannot_be_made_falls_back_to_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_temp = tmp_path / "tmp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    (tmp_path / "a-file").write_text("in the way")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        written = Path(write_crash_log({CRASH_DIR_ENV: str(tmp_path / "a-file" / "logs")}))
    assert written.parent == system_temp and written.name.startswith("somas-crash-")
    assert "RuntimeError: boom" in written.read_text()


def test_init_scaffolds_and_keeps_existing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert somas(tmp_path, "init") == 0
    assert (tmp_path / ".somas" / "config.yml").exists()
    assert len(list((tmp_path / ".somas" / "agents").glob("*.yml"))) == 8
    consumer = (tmp_path / ".github" / "workflows" / "somas.yml").read_text()
    assert "somas-dev/somas-action/.github/workflows/somas-pipeline.yml@v1" in consumer
    (tmp_path / ".somas" / "config.yml").write_text("version: 1\n")
    assert somas(tmp_path, "init") == 0
    assert (tmp_path / ".somas" / "config.yml").read_text() == "version: 1\n"
    assert "already scaffolded" in capsys.readouterr().out


@pytest.mark.subprocess
def test_demo_console_script_and_the_runbook_commands(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    somas_bin = Path(sys.executable).with_name("somas")
    result = subprocess.run(
        [str(somas_bin), "demo", "--dir", str(demo_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "SOMAS_ACTOR": "local:carol"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "approving the review gate as local:carol" in result.stdout
    assert "status: completed" in result.stdout
    # The recorded implementer works on the existing code, and the lines show each step.
    for step in (
        "turn 1: search",
        "search 'def slugify\\\\(' -> ok",
        "read_file src/slugkit/__init__.py:1-30 -> ok",
        "replace_in_file src/slugkit/__init__.py -> ok",
        "replace_in_file tests/test_slugify.py -> ok",
        "turn 6: run_tests",
        "loop finished after 7 turns, 2 files changed",
    ):
        assert step in result.stdout, step

    def sh(command: str) -> str:
        done = subprocess.run(
            command, shell=True, cwd=demo_dir, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    p = ".somas/projects/project-1"
    assert sh(f"cat {p}/state.json | jq '.status, .current_stage'") == '"completed"\n"release"'
    assert sh(f"jq -r '.recovery_info.last_successful_checkpoint' {p}/state.json").startswith("cp-")
    validation = sh(f"cat {p}/transitions.jsonl | jq -c 'select(.to_stage == \"validation\")'")
    assert len(validation.splitlines()) >= 5
    assert sh(f"jq 'length' {p}/dead_letters.json") == "0"
    assert len(sh(f"tail -10 {p}/transitions.jsonl").splitlines()) == 10
    assert sh(f"cat {p}/state.json | jq '.stages.validation.started_at'").startswith('"20')
    assert sh(f"cat {p}/artifacts/test_results.json | jq '.failures'") == "[]"
    assert sh(f"cat {p}/artifacts/validation_report.json | jq -r '.status'") == "passed"
    assert sh(f"cat {p}/state.json | jq '.circuit_breakers'") == "{}"
    assert "project created" in sh(f"git log --oneline {p}/")
    assert sh("git log --format=%s -1 somas/project-1") == (
        "slugify: add max_length, cut at a word boundary"
    )
    # The whole suite ran in the sandbox, on the base and on the branch.
    results = f"{p}/artifacts/test_results.json"
    assert sh(f"jq -c '[.base.passed, .passed, .total, .regressions]' {results}") == "[5,7,7,[]]"
    assert sh(f"jq -r '.sandbox.kind' {results}") in ("bubblewrap", "process-group")
    assert sh(f"{somas_bin} replay project-1 --json | jq -r .identical") == "true"
    assert sh(f"{somas_bin} reconstruct project-1 --check").endswith("matches transitions.jsonl")
    version = subprocess.run(
        [sys.executable, "-m", "somas_action", "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("somas ")


def test_demo_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--dir", str(tmp_path)]) == 1
    assert "folder is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.subprocess
def test_starting_somas_does_not_import_the_heavy_libraries() -> None:
    """Cold start is a benchmark figure; this keeps PyGithub and jsonschema out of it."""
    heavy = "{'github', 'jsonschema', 'yaml'}"
    code = f"import sys, somas_action.cli.main; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The operator views read files and print: what they may import, as counts (not times).
_VIEW_BUDGET = {"status": 25, "list": 25, "health": 31, "monitor": 31}
_NEVER_FOR_VIEWS = (
    "yaml",
    "jsonschema",
    "github",
    "requests",
    "openai",
    "anthropic",
    "somas_action.pipeline",
    "somas_action.app",
    "somas_action.providers",
)
_IMPORTS_OF = """
import json, sys
from somas_action.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
names = sorted(sys.modules)
print(json.dumps(names))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("command", sorted(_VIEW_BUDGET))
def test_the_operator_views_stay_within_their_import_budget(
    tmp_path: Path, clock: FakeClock, command: str
) -> None:
    repo = scenarios.make_repo(tmp_path / "repo")
    scenarios.runner(repo, clock).start(scenarios.open_issue(repo), "local:tester")
    args = [
        "--repo",
        str(repo),
        command,
        *(["project-1"] if command in ("status", "health") else []),
    ]
    # The first run validates config.yml (YAML, JSON Schema) and caches it; later runs do not.
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORTS_OF, *args], capture_output=True, text=True, check=True
        )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [
        m for m in modules if m.split(".")[0] in _NEVER_FOR_VIEWS or m.startswith(_NEVER_FOR_VIEWS)
    ]
    assert heavy == []
    ours = [m for m in modules if m.startswith("somas_action")]
    assert len(ours) <= _VIEW_BUDGET[command], ours
