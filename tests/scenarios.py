"""Named scenarios the tests build on: repositories, recordings, runners."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

from somas_action.app.compose import build_runner
from somas_action.cli.commands.demo import write_demo_files
from somas_action.cli.commands.init import scaffold
from somas_action.config.loader import parse_config
from somas_action.config.resources import recordings_dir
from somas_action.config.schemas import problems
from somas_action.core import engine, names
from somas_action.core.clock import Clock
from somas_action.core.domain import Event, EventDraft, HumanGate, IssueSnapshot, Parked, State
from somas_action.core.engine import Context
from somas_action.core.ports import AgentRequest
from somas_action.core.projection import fold
from somas_action.core.settings import Config
from somas_action.pipeline.runner import Runner
from somas_action.providers.recorded import RecordedProvider
from somas_action.state.local_tracker import LocalTracker

DEMO_ISSUE_TITLE = "Add a slugify helper for page URLs"
# Where a test's crash logs go ($SOMAS_CRASH_DIR, set for every test by conftest).
CRASH_LOGS = "crash-logs"
# Who and when for commands the tests give the pure engine directly.
CTX = Context(actor="local:t", ts="2026-01-01T00:00:00.000Z", command_id="cmd")


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path) -> Path:
    """The demo's git repository: the slugkit library with its unittest suite, the scaffolded
    default config and the demo's validation command, on main."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.invalid")
    write_demo_files(path)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def make_folder(path: Path) -> Path:
    """A plain folder (no git) with the scaffolded default `.somas/`: config and agents only."""
    path.mkdir(parents=True)
    scaffold(path)
    return path


def make_recording(folder: Path, **stages: list[dict[str, Any]]) -> Path:
    """The demo recording, with the responses of some stages replaced (a stage given here
    answers with these structured replies, not with a recorded tool conversation)."""
    shutil.copytree(recordings_dir() / "demo", folder)
    for stage, responses in stages.items():
        (folder / f"{stage}.json").write_text(
            json.dumps({"stage": stage, "responses": responses}, indent=2)
        )
        (folder / f"{stage}.conversation.json").unlink(missing_ok=True)
    return folder


def use_structured_implementation(repo: Path, folder: Path) -> Path:
    """Point the repository's config at a copy of the demo recording whose implementer replies
    with whole files: a recorded tool conversation only replays on the tree it was made on,
    and a restarted implementation works on a branch that already has the change."""
    recording = make_recording(folder, implementation=[{"output": demo_output("implementation")}])
    config = repo / names.SOMAS_DIR / names.CONFIG_FILE
    config.write_text(config.read_text().replace("builtin:demo", str(recording)))
    return recording


def json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (the test fails naming the file if it does not)."""
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path}: expected a JSON object, found {type(data).__name__}"
    return data


def json_array(path: Path) -> list[Any]:
    """A JSON file that must hold an array (the test fails naming the file if it does not)."""
    data = json.loads(path.read_text())
    assert isinstance(data, list), f"{path}: expected a JSON array, found {type(data).__name__}"
    return data


def demo_output(stage: str) -> dict[str, Any]:
    """The demo recording's first reply for `stage`."""
    data = json_object(recordings_dir() / "demo" / f"{stage}.json")
    output = data["responses"][0]["output"]
    assert isinstance(output, dict), f"demo recording {stage}: the first output is not an object"
    return output


def error(kind: str, message: str = "boom") -> dict[str, Any]:
    """A recorded provider error response."""
    return {"error": {"kind": kind, "message": message}}


def open_issue(repo: Path, title: str = DEMO_ISSUE_TITLE, body: str = "make it so") -> int:
    """Open a local issue labelled somas:project; returns its number."""
    return LocalTracker(repo).create_issue(title, body, [names.PROJECT_LABEL]).number


def runner(
    repo: Path,
    clock: Clock,
    recording: Path | None = None,
    events: list[Event] | None = None,
) -> Runner:
    """A runner on the local tracker, the given recording (default: demo) and a fake clock."""
    sink = events.append if events is not None else None
    return build_runner(
        repo, clock=clock, on_event=sink, recording=str(recording) if recording else None
    )


def recorded_calls(run: Runner) -> list[AgentRequest]:
    """Every request a runner on a recording made to its agents, in order."""
    provider = run.s.provider
    assert isinstance(provider, RecordedProvider), f"not a recorded provider: {provider!r}"
    return provider.calls


def project_dir(repo: Path, project_id: str = "project-1") -> Path:
    """`.somas/projects/<id>`."""
    return repo / names.SOMAS_DIR / names.PROJECTS_DIR / project_id


def state_of(repo: Path, project_id: str = "project-1") -> dict[str, Any]:
    """state.json as written."""
    return json_object(project_dir(repo, project_id) / names.STATE_FILE)


def gate_of(state: State) -> HumanGate:
    """`.human_gate` of a state that must have one (the test fails saying so if not)."""
    gate = state["human_gate"]
    assert gate is not None, f"{state['project_id']} has no human gate ({state['status']})"
    return gate


def parked_of(state: State) -> Parked:
    """`.recovery_info.parked` of a state that must be parked (the test fails if not)."""
    parked = state["recovery_info"].get("parked")
    assert parked is not None, f"{state['project_id']} is not parked ({state['status']})"
    return parked


# The notification outbox's own events: what the issue is owed and what was said.
OUTBOX_EVENTS = frozenset({"notification_owed", "notification_sent"})


def without_outbox(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of a log that are not the outbox's (what happened to the project)."""
    return [e for e in events if e["event_type"] not in OUTBOX_EVENTS]


def log_of(repo: Path, project_id: str = "project-1") -> list[dict[str, Any]]:
    """Every line of transitions.jsonl, parsed."""
    text = (project_dir(repo, project_id) / names.TRANSITIONS_FILE).read_text()
    return [json.loads(line) for line in text.splitlines()]


def run_to_gate(repo: Path, clock: Clock, recording: Path | None = None) -> Runner:
    """Open issue #1 and advance it until it stops (at the review gate on the demo recording)."""
    number = open_issue(repo)
    run = runner(repo, clock, recording)
    state = run.start(number, "local:tester")
    run.advance(state["project_id"], "local:tester")
    return run


def schema_problems(repo: Path, project_id: str = "project-1") -> list[str]:
    """Every schema problem in a project's files (state, log, dead letters, artifacts)."""
    folder = project_dir(repo, project_id)
    found = [f"state.json {p}" for p in problems("state", state_of(repo, project_id))]
    for number, event in enumerate(log_of(repo, project_id), start=1):
        found += [f"transitions.jsonl:{number} {p}" for p in problems("event", event)]
    letters = json.loads((folder / names.DEAD_LETTERS_FILE).read_text())
    found += [f"dead_letters.json {p}" for p in problems("dead_letters", letters)]
    for name, schema in (
        (names.TEST_RESULTS_ARTIFACT, "test_results"),
        (names.VALIDATION_REPORT_ARTIFACT, "validation_report"),
    ):
        path = folder / names.ARTIFACTS_DIR / name
        if path.exists():
            found += [f"{name} {p}" for p in problems(schema, json.loads(path.read_text()))]
    for issue in (repo / names.SOMAS_DIR / names.TRACKER_DIR / "issues").glob("*.json"):
        found += [
            f"{issue.name} {p}" for p in problems("tracker_issue", json.loads(issue.read_text()))
        ]
    return found


def config_section(**sections: Any) -> Config:
    """A validated config with the given sections and every default, without a repository."""
    return parse_config(sections, Path("config.yml"))


def sealed(drafts: list[EventDraft], start: int = 1) -> list[Event]:
    """Drafts numbered as the log would number them (the fold reads `seq`, not the hashes)."""
    return [
        cast(Event, {**draft, "seq": start + i, "prev_hash": "0" * 64, "hash": "0" * 64})
        for i, draft in enumerate(drafts)
    ]


def created_state(config: Config, number: int = 3) -> State:
    """A project just opened for issue `number`, folded by the pure engine (no files)."""
    issue: IssueSnapshot = {"number": number, "title": "t", "body": "b", "url": ""}
    return fold(sealed(engine.create_project(f"project-{number}", issue, config, CTX)))
