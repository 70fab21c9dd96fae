"""Output contracts of the operator commands: --json shapes, 80 columns, doctor, verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from tests import scenarios
from tests.scenarios import error

P = ".somas/projects/project-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=datetime.now(UTC) - timedelta(minutes=30), step_seconds=0.01)


@pytest.fixture
def failed_repo(repo: Path, tmp_path: Path, clock: FakeClock) -> Path:
    recording = scenarios.make_recording(
        tmp_path / "rec",
        validation=[error("timeout", "validator timed out after waiting a very long time " * 3)]
        * 3,
    )
    scenarios.run_to_gate(repo, clock, recording)
    return repo


def run(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--repo", str(repo), *args])
    return code, capsys.readouterr().out


HUMAN_COMMANDS = [
    ["list"],
    ["status"],
    ["status", "project-1"],
    ["health", "project-1"],
    ["monitor"],
    ["verify", "project-1"],
    ["doctor"],
    ["backup", "project-1", "--list"],
    ["dead-letters", "project-1", "list"],
    ["reconstruct", "project-1", "--check"],
    ["pause", "project-1"],
    ["unpause", "project-1"],
    ["restart", "project-1", "--stage", "validation"],
]


@pytest.mark.e2e
def test_human_output_fits_80_columns(
    failed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in HUMAN_COMMANDS:
        _, out = run(failed_repo, capsys, *command)
        long = [line for line in out.splitlines() if len(line) > 80]
        assert long == [], (command, long)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("command", "keys"),
    [
        (["list"], None),
        (["health", "project-1"], {"project_id", "status", "health", "findings", "next"}),
        (["monitor"], {"projects", "level", "findings", "by_status"}),
        (["verify", "project-1"], None),
        (["doctor"], None),
        (["backup", "project-1"], {"taken", "backups"}),
        (["dead-letters", "project-1", "list"], None),
        (["reconstruct", "project-1", "--check"], {"matches", "differing"}),
        (["pause", "project-1"], {"project_id", "status", "current_stage", "events"}),
        (["incident", "note", "project-1", "--text", "x"], {"incident", "events"}),
        (["restart", "project-1", "--stage", "validation", "--no-advance"], {"events"}),
        (["stop-all"], {"paused", "pipeline_enabled", "runs_cancelled"}),
    ],
)
def test_json_output_is_pure_json(
    failed_repo: Path, capsys: pytest.CaptureFixture[str], command: list[str], keys: set[str] | None
) -> None:
    _, out = run(failed_repo, capsys, *command, "--json")
    data = json.loads(out)
    if keys:
        assert keys <= set(data)
    if "events" in (keys or set()):
        assert all({"seq", "event_type", "actor"} <= set(e) for e in data["events"])


@pytest.mark.e2e
def test_verify_names_the_first_bad_line(
    failed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = failed_repo / P / "transitions.jsonl"
    lines = log.read_text().splitlines()
    lines[4] = lines[4].replace('"actor": "local:tester"', '"actor": "local:mallory"')
    log.write_text("\n".join(lines) + "\n")
    code, out = run(failed_repo, capsys, "verify", "project-1")
    assert code == 1
    assert "FAIL hash chain:" in out and "line 5: hash chain broken" in out


def test_doctor_names_the_missing_secret_for_live_providers(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run(repo, capsys, "doctor")
    assert code == 0 and "no key needed" in out
    # What doctor says once a live provider is configured (the recorded type is the default).
    from somas_action.cli.commands import doctor

    lines = doctor.diagnose(repo, github=True, live=True)
    problems = [line["detail"] for line in lines if line["status"] == "problem"]
    assert any("add the repository secret OPENAI_API_KEY" in p for p in problems)
    assert any("somas-pipeline.yml: missing" in p for p in problems)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    lines = doctor.diagnose(repo, github=False, live=True)
    assert [line for line in lines if line["status"] == "problem"] == []


def test_doctor_reports_each_bad_field(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / ".somas" / "config.yml").write_text(
        "pipeline:\n  enabled: maybe\n  retry: {backoff_seconds: -1}\n"
    )
    code, out = run(repo, capsys, "doctor", "--json")
    assert code == 1
    fails = [line["detail"] for line in json.loads(out) if line["status"] == "problem"]
    assert any("pipeline.enabled: 'maybe' is not of type 'boolean'" in f for f in fails)
    assert any("pipeline.retry.backoff_seconds: -1 is less than the minimum" in f for f in fails)
