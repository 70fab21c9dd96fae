"""Each runbook scenario end to end: the runbook's shell commands and ours, on a demo project."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from somas_action.cli.main import main
from somas_action.config.loader import load_config
from somas_action.core.clock import FakeClock
from somas_action.core.health import project_findings
from somas_action.state.store import ProjectStore
from tests import scenarios
from tests.scenarios import demo_output, error, log_of, state_of


@pytest.fixture
def clock() -> FakeClock:
    """Recent fake time, so ages in health/monitor (which use the real clock) are small."""
    return FakeClock(start=datetime.now(UTC) - timedelta(minutes=30), step_seconds=0.01)


def somas(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), *args])


def sh(repo: Path, command: str) -> str:
    done = subprocess.run(command, shell=True, cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


P = ".somas/projects/project-1"


@pytest.fixture
def failed_repo(repo: Path, tmp_path: Path, clock: FakeClock) -> Path:
    """Project 1 failed at validation: the validator timed out three times."""
    recording = scenarios.make_recording(
        tmp_path / "rec", validation=[error("timeout", "validator timed out")] * 3
    )
    scenarios.run_to_gate(repo, clock, recording)
    scenarios.use_structured_implementation(repo, tmp_path / "good")
    return repo


def _use_demo_recording(repo: Path) -> None:
    """The provider 'recovers': the config points at the good recording (it does already)."""
    assert load_config(repo).agent_provider.recording.endswith("/good")


@pytest.mark.e2e
def test_failed_stage_is_found_diagnosed_and_recovered_from_its_dead_letter(
    failed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = failed_repo
    # Runbook: identify failed pipelines, view state, check recovery info.
    assert (
        sh(repo, 'grep -l \'"status": "failed"\' .somas/projects/*/state.json') == f"{P}/state.json"
    )
    assert sh(repo, f"cat {P}/state.json | jq -r '.status, .current_stage'") == "failed\nvalidation"
    assert sh(repo, f"cat {P}/state.json | jq '.recovery_info.can_auto_recover'") == "false"
    assert somas(repo, "list", "--status", "failed") == 0
    assert "project-1      failed       validation" in capsys.readouterr().out

    assert somas(repo, "health", "project-1") == 1
    out = capsys.readouterr().out
    assert "validation failed attempts: 3 (> 2)" in out
    assert "failed at validation; needs a person" in out
    assert "somas dead-letters project-1 list" in out  # the next command to run

    letters = json.loads((repo / P / "dead_letters.json").read_text())
    letter_id = letters[0]["id"]
    assert somas(repo, "dead-letters", "project-1", "show", letter_id) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["error"]["message"] == "validator timed out"

    # The provider recovered (the retry uses the repository's recording again).
    _use_demo_recording(repo)
    assert somas(repo, "dead-letters", "project-1", "retry", letter_id) == 0
    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert state["dead_letter_ids"] == []
    assert sh(repo, f"jq length {P}/dead_letters.json") == "0"
    retried = [e for e in log_of(repo) if e["event_type"] == "dead_letter_retried"]
    assert retried[0]["data"]["dead_letter_id"] == letter_id
    assert retried[0]["actor"] == "local:tester"
    # Completed stages were not repeated.
    assert state["stages"]["implementation"]["attempts"] == 1


@pytest.mark.e2e
def test_restart_from_a_stage_takes_a_backup_and_keeps_earlier_artifacts(
    failed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = failed_repo
    spec = (repo / P / "artifacts" / "specification" / "specification.md").read_bytes()
    assert (
        somas(
            repo,
            "restart",
            "project-1",
            "--stage",
            "implementation",
            "--reason",
            "validator fixed",
            "--actor",
            "local:ops",
        )
        == 0
    )
    restart = next(e for e in log_of(repo) if e["event_type"] == "stage_restarted")
    assert (restart["actor"], restart["data"]["reason"]) == ("local:ops", "validator fixed")
    assert restart["data"]["backup"] == "state.json.backup"
    backup = json.loads((repo / P / "state.json.backup").read_text())
    assert backup["status"] == "failed"
    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert state["stages"]["implementation"]["attempts"] == 1  # started afresh
    assert (repo / P / "artifacts" / "specification" / "specification.md").read_bytes() == spec
    assert somas(repo, "restart", "project-1", "--stage", "deploy") == 1
    assert "unknown stage 'deploy'; valid stages: intake" in capsys.readouterr().err


@pytest.mark.e2e
def test_resume_from_checkpoints(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    scenarios.use_structured_implementation(repo, repo.parent / "good")
    checkpoint = sh(repo, f"jq -r '.recovery_info.last_successful_checkpoint' {P}/state.json")
    assert checkpoint.endswith("-validation")
    assert somas(repo, "resume", "project-1", "--checkpoint", "cp-999999-nope") == 1
    err = capsys.readouterr().err
    assert "unknown checkpoint 'cp-999999-nope'; valid checkpoints: cp-" in err
    assert checkpoint in err
    architecture = next(
        c["id"]
        for c in state_of(repo)["recovery_info"]["checkpoints"]
        if c["stage"] == "architecture"
    )
    assert somas(repo, "resume", "project-1", "--checkpoint", architecture) == 0
    state = state_of(repo)
    assert state["stages"]["implementation"]["attempts"] == 1
    assert state["stages"]["architecture"]["status"] == "completed"
    resumed = [e for e in log_of(repo) if e["event_type"] == "project_resumed"]
    assert resumed[0]["to_stage"] == "implementation"
    assert (state["status"], state["current_stage"]) == ("waiting", "review")


@pytest.mark.subprocess
def test_stuck_stage_is_critical(repo: Path, clock: FakeClock) -> None:
    from somas_action.core import engine
    from somas_action.core.engine import Context

    number = scenarios.open_issue(repo)
    run = scenarios.runner(repo, clock)
    state = run.start(number, "local:tester")
    store = ProjectStore(repo, "project-1")
    ctx = Context("local:tester", "2026-01-01T09:00:00.000Z", "crash")
    # A run that died mid-stage: started, never finished.
    store.commit(
        state, engine.start_attempt(state, load_config(repo).stage("intake"), 1, None, ctx)
    )
    state, _ = store.load()
    now = datetime(2026, 1, 1, 9, 45, tzinfo=UTC)
    findings = {f.metric: f for f in project_findings(state, load_config(repo), now)}
    stuck = findings["stuck_stage"]
    assert (stuck.level, stuck.value, stuck.threshold) == ("critical", 45.0, 10)
    # The runbook's diagnosis commands see the same thing.
    assert (
        sh(repo, f"cat {P}/state.json | jq -r '.stages.intake.started_at'")
        == "2026-01-01T09:00:00.000Z"
    )
    assert "stage_started" in sh(repo, f"tail -20 {P}/transitions.jsonl")
    assert somas(repo, "health", "project-1") == 2


@pytest.mark.e2e
def test_runbook_thresholds(repo: Path, clock: FakeClock) -> None:
    scenarios.run_to_gate(repo, clock)
    state, _ = ProjectStore(repo, "project-1").load()
    config = load_config(repo)
    opened = datetime.fromisoformat(scenarios.gate_of(state)["opened_at"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(state["created_at"].replace("Z", "+00:00"))

    def levels(now: datetime) -> dict[str, str]:
        return {f.metric: f.level for f in project_findings(state, config, now)}

    assert levels(opened + timedelta(hours=23)) == {}
    assert levels(opened + timedelta(hours=25))["human_wait_hours"] == "warning"
    assert levels(created + timedelta(hours=49))["human_wait_hours"] == "critical"
    assert levels(created + timedelta(hours=73))["pipeline_duration_hours"] == "critical"
    thresholds = replace(config.monitoring.alerts.thresholds, human_wait_time_hours=30)
    alerts = replace(config.monitoring.alerts, thresholds=thresholds)
    config = replace(config, monitoring=replace(config.monitoring, alerts=alerts))
    assert levels(opened + timedelta(hours=31))["human_wait_hours"] == "critical"


@pytest.mark.e2e
def test_corrupted_state_json_restore_and_reconstruct(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    assert somas(repo, "backup", "project-1") == 0
    good = (repo / P / "state.json").read_text()
    (repo / P / "state.json").write_text('{"status": "waiting", ')
    # Runbook diagnosis: the JSON test fails.
    check = subprocess.run(
        ["python3", "-c", f"import json; json.load(open('{P}/state.json'))"],
        cwd=repo,
        capture_output=True,
    )
    assert check.returncode != 0
    for command in (["health", "project-1"], ["list"], ["advance", "project-1"]):
        assert somas(repo, *command) == 1
    err = capsys.readouterr().err
    assert "somas restore project-1" in err and "Traceback" not in err
    assert somas(repo, "verify", "project-1") == 1
    assert "FAIL state.json: not valid JSON" in capsys.readouterr().out

    assert somas(repo, "restore", "project-1") == 0
    assert "matches the log's latest event" in capsys.readouterr().out
    assert state_of(repo)["status"] == "waiting"
    assert somas(repo, "verify", "project-1") == 0
    assert [e["event_type"] for e in log_of(repo)][-1] == "state_restored"
    # The corrupt file was kept aside, not lost.
    assert any(
        p.read_text().startswith('{"status": "waiting", ')
        for p in (repo / P).glob("state.json.backup*")
    )

    (repo / P / "state.json").unlink()
    assert somas(repo, "reconstruct", "project-1") == 0
    assert json.loads((repo / P / "state.json").read_text())["status"] == json.loads(good)["status"]
    # Runbook: analyse the log to determine the correct state.
    query = "group_by(.stage) | map({stage: .[0].stage, events: length})"
    groups = json.loads(sh(repo, f"cat {P}/transitions.jsonl | jq -s '{query}'"))
    assert {g["stage"] for g in groups} >= {"intake", "validation", "review"}


@pytest.mark.subprocess
@pytest.mark.e2e
def test_an_old_backup_copied_by_hand_never_moves_the_project_backwards(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    run = scenarios.run_to_gate(repo, clock)
    assert somas(repo, "backup", "project-1") == 0
    dated = sorted((repo / P).glob("state.json.backup.*"))[0]
    run.approve("project-1", "local:alice")
    run.advance("project-1", "local:tester")
    assert state_of(repo)["status"] == "completed"
    log_before = log_of(repo)
    # Runbook: ls the backups, cp one over state.json.
    assert dated.name in sh(repo, f"ls -la {P}/ | grep backup")
    sh(repo, f"cp {P}/{dated.name} {P}/state.json")
    capsys.readouterr()

    # Every command that writes refuses, naming the backup and the two ways out.
    assert somas(repo, "advance", "project-1") == 1
    err = capsys.readouterr().err
    assert f"a copy of {dated.name}, taken at event #" in err
    assert "somas reconstruct project-1" in err and f"--from {dated.name} --force" in err
    assert log_of(repo) == log_before
    # A view shows the log's truth and says what is wrong.
    assert somas(repo, "status", "project-1") == 0
    assert "a copy of" in capsys.readouterr().out

    # `restore` of that backup is refused too unless forced; `reconstruct` puts it right.
    assert somas(repo, "restore", "project-1", "--from", dated.name) == 1
    assert "add --force to go back anyway" in capsys.readouterr().err
    assert somas(repo, "reconstruct", "project-1") == 0
    assert state_of(repo)["status"] == "completed"
    assert somas(repo, "verify", "project-1") == 0

    # Going back on purpose is possible, and recorded.
    assert somas(repo, "restore", "project-1", "--from", dated.name, "--force") == 0
    restored = log_of(repo)[-1]
    assert (restored["event_type"], restored["data"]["from"]) == ("state_restored", dated.name)
    assert state_of(repo)["status"] == "waiting"
    assert somas(repo, "verify", "project-1") == 0


@pytest.mark.e2e
def test_quality_gate_failures_are_readable_with_the_runbook(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    broken = demo_output("implementation")
    broken["files"][0]["content"] = broken["files"][0]["content"].replace(
        'strip("-")', 'strip("_")'
    )
    scenarios.run_to_gate(
        repo, clock, scenarios.make_recording(tmp_path / "rec", implementation=[{"output": broken}])
    )
    report = json.loads(sh(repo, f"cat {P}/artifacts/validation_report.json | jq '.'"))
    assert report["status"] == "failed"
    failures = json.loads(sh(repo, f"cat {P}/artifacts/test_results.json | jq '.failures'"))
    assert failures and all(f["kind"] == "failure" for f in failures)
    gates = state_of(repo)["stages"]["validation"]["quality_gates"]
    assert gates[0]["passed"] is False and "failed" in gates[0]["detail"]


@pytest.mark.e2e
def test_growing_dead_letter_queue_purge_and_hand_purge(
    failed_repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = failed_repo
    # Grow the queue: restart the failed stage six more times against the failing recording.
    recording = Path(str(repo) + "-rec")
    scenarios.make_recording(recording, validation=[error("timeout", "validator timed out")] * 3)
    run = scenarios.runner(repo, clock, recording)
    from somas_action.pipeline.operator import Operator

    for _ in range(6):  # each restart fails the stage again: one more dead letter
        Operator(run).restart("project-1", "validation", "local:ops", "again")
        run.advance("project-1", "local:tester")
    count = int(sh(repo, f"cat {P}/dead_letters.json | jq 'length'"))
    assert count == 7
    assert (
        sh(repo, f"if [ $(cat {P}/dead_letters.json | jq 'length') -gt 5 ]; then echo ALERT; fi")
        == "ALERT"
    )
    assert somas(repo, "monitor") == 1
    assert "dead letters: 7 (> 5)" in capsys.readouterr().out

    assert somas(repo, "dead-letters", "project-1", "purge", "--actor", "local:ops") == 0
    assert len(json.loads((repo / P / "dead_letters.json.backup").read_text())) == 7
    assert sh(repo, f"jq length {P}/dead_letters.json") == "0"
    purge = log_of(repo)[-1]
    assert (purge["event_type"], purge["data"]["by_hand"], len(purge["data"]["ids"])) == (
        "dead_letters_purged",
        False,
        7,
    )

    # A hand purge, as the runbook does it, is noticed and recorded on the next run.
    Operator(run).restart("project-1", "validation", "local:ops", "once more")
    run.advance("project-1", "local:tester")
    letters = f"{P}/dead_letters.json"
    sh(repo, f"cp {letters} {letters}.backup && echo '[]' > {letters}")
    assert somas(repo, "dead-letters", "project-1", "list") == 0
    hand = log_of(repo)[-1]
    assert (hand["event_type"], hand["data"]["by_hand"], len(hand["data"]["ids"])) == (
        "dead_letters_purged",
        True,
        1,
    )
    assert "edited dead_letters.json by hand" in hand["actor"]
    assert somas(repo, "verify", "project-1") == 0


@pytest.mark.e2e
def test_emergency_stop_and_restart_of_all_pipelines(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        number = scenarios.open_issue(repo)
        scenarios.runner(repo, clock).start(number, "local:tester")
    scenarios.runner(repo, clock).advance("project-2", "local:tester")
    config_text = (repo / ".somas" / "config.yml").read_text()

    assert somas(repo, "stop-all", "--actor", "local:ops") == 0
    new_text = (repo / ".somas" / "config.yml").read_text()
    assert "  enabled: false" in new_text
    assert "# Emergency stop (operations runbook)" in new_text  # comments kept
    assert (repo / ".somas" / "config.yml.backup").read_text() == config_text
    for pid in ("project-1", "project-2"):
        state = state_of(repo, pid)
        assert state["status"] == "paused" and state["pause"]["by"] == "local:ops"
    assert somas(repo, "advance", "project-1") == 1
    assert "paused" in capsys.readouterr().out

    assert somas(repo, "start-all", "--actor", "local:ops") == 0
    assert load_config(repo).enabled
    assert state_of(repo, "project-1")["status"] == "pending"
    assert state_of(repo, "project-2")["status"] == "waiting"
    assert somas(repo, "advance", "project-1") == 0


@pytest.mark.e2e
def test_pause_unpause_cancel(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    assert somas(repo, "pause", "project-1") == 0
    assert somas(repo, "approve", "project-1") == 1
    assert "nothing to approve: the project is paused" in capsys.readouterr().err
    assert somas(repo, "unpause", "project-1") == 0
    assert state_of(repo)["status"] == "waiting"
    assert somas(repo, "cancel", "project-1", "--reason", "duplicate") == 0
    assert state_of(repo)["status"] == "cancelled"
    assert somas(repo, "cancel", "project-1") == 1
    assert "already cancelled" in capsys.readouterr().err


@pytest.mark.e2e
def test_full_reset_archives_and_starts_fresh(
    repo: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios.run_to_gate(repo, clock)
    old_log = (repo / P / "transitions.jsonl").read_text()
    assert somas(repo, "reset", "project-1") == 0
    assert somas(repo, "reset", "project-1") == 0  # the same day twice: never overwrites
    backups = sorted(
        p.name for p in (repo / ".somas" / "projects").iterdir() if ".backup." in p.name
    )
    # The CLI dates archives by the real clock (not this test's fake one, 30 minutes behind).
    day = backups[0].removeprefix("project-1.backup.")
    assert day.isdigit() and len(day) == 8
    assert backups == [f"project-1.backup.{day}", f"project-1.backup.{day}.2"]
    archived = (repo / ".somas" / "projects" / backups[0] / "transitions.jsonl").read_text()
    assert archived.startswith(old_log) and '"event_type": "project_reset"' in archived
    state = state_of(repo)
    assert (state["status"], state["current_stage"]) == ("pending", "intake")
    capsys.readouterr()
    assert somas(repo, "list") == 0
    assert ".backup." not in capsys.readouterr().out


@pytest.mark.e2e
def test_incident_notes_go_into_the_transitions_log(repo: Path, clock: FakeClock) -> None:
    scenarios.run_to_gate(repo, clock)
    assert (
        somas(repo, "incident", "note", "project-1", "--text", "provider outage 09:00-09:40") == 0
    )
    assert somas(repo, "incident", "resolve", "project-1", "--text", "keys rotated") == 0
    lines = sh(repo, f'grep \'"event_type": "incident_\' {P}/transitions.jsonl').splitlines()
    assert len(lines) == 2 and "keys rotated" in lines[1]
    assert state_of(repo)["incident"]["status"] == "resolved"


@pytest.mark.e2e
def test_rollback_of_the_project_folder_with_git(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert main(["demo", "--dir", str(demo)]) == 0
    history = sh(demo, f"git log --oneline {P}/").splitlines()
    assert len(history) >= 15
    assert any("validation completed" in line for line in history)
    target = next(line.split()[0] for line in history if "review waiting for approval" in line)
    sh(demo, f"git checkout {target} -- {P}/")
    state = json.loads((demo / P / "state.json").read_text())
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    assert main(["--repo", str(demo), "verify", "project-1"]) == 0
    # Configuration rollback, as the runbook does it.
    (demo / ".somas" / "config.yml").write_text("pipeline: {enabled: false}\n")
    sh(demo, "git checkout HEAD -- .somas/config.yml")
    assert load_config(demo).enabled
