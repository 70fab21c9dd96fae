"""`somas demo`: the whole pipeline on the embedded default, in a fresh git repository.

The repository already has code: a small library with its own unittest suite
(`recordings/demo/repository.json`). The recorded implementer changes it through the tool loop
(search, read, replace, run the tests, finish) and the validation stage runs the whole suite in
the sandbox, on the base and on the branch; nothing needs the network.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.cli.commands.init import scaffold
from somas_action.cli.output import echo
from somas_action.config.actor import default_actor
from somas_action.config.resources import recordings_dir
from somas_action.core import names
from somas_action.core.errors import SomasError
from somas_action.core.report import status_table
from somas_action.state.git import GitWorkspace
from somas_action.state.local_tracker import LocalTracker

DEMO_BOT = "local:somas-demo"


def prepare_repo(folder: Path) -> None:
    """A new git repository with the demo library and the default `.somas/` committed on main
    (empty folders only)."""
    if folder.exists() and any(folder.iterdir()):
        raise SomasError(f"--dir {folder}: folder is not empty; choose a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    workspace = GitWorkspace(folder)
    workspace.git("init", "-q", "-b", names.DEFAULT_BASE_BRANCH)
    workspace.git("config", "user.name", "SOMAS demo")
    workspace.git("config", "user.email", "demo@somas.invalid")
    write_demo_files(folder)
    workspace.git("add", "-A")
    workspace.git("commit", "-q", "-m", "slugkit 0.1.0 with the default SOMAS configuration")


def write_demo_files(folder: Path) -> None:
    """The demo library, the default `.somas/`, and the validation command its suite needs."""
    spec = json.loads((recordings_dir() / "demo" / "repository.json").read_text("utf-8"))
    for path, text in spec["files"].items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    scaffold(folder)
    config = folder / names.SOMAS_DIR / names.CONFIG_FILE
    config.write_text(config.read_text(encoding="utf-8") + spec["config_yml"], encoding="utf-8")


def register(sub: Subparsers) -> None:
    """`somas demo`."""
    p = sub.add_parser("demo", help="run the whole pipeline locally on the embedded default")
    p.add_argument("--dir", type=Path, help="empty folder for the demo repository")
    p.set_defaults(func=lambda a: run(a.dir))


def run(directory: Path | None) -> int:
    """Create the repository, open issue #1, run all stages, approve the review gate."""
    # Imported here so that light commands do not pay for jsonschema and the runner at start.
    from somas_action.app.compose import build_runner, progress_printer
    from somas_action.config.loader import load_config
    from somas_action.core.clock import SystemClock
    from somas_action.providers.recorded import RecordedProvider, resolve_recording

    folder = (directory or Path(tempfile.mkdtemp(prefix="somas-demo-"))).resolve()
    prepare_repo(folder)
    config = load_config(folder)
    issue_text = RecordedProvider(
        resolve_recording(folder, config.agent_provider.recording)
    ).issue()
    tracker = LocalTracker(folder)
    issue = tracker.create_issue(issue_text["title"], issue_text["body"], [names.PROJECT_LABEL])
    print(f"demo repository: {folder}")
    print(f"opened local issue #{issue.number} [{names.PROJECT_LABEL}]: {issue.title}\n")

    clock = SystemClock()
    runner = build_runner(folder, clock=clock, on_event=progress_printer(clock), commit_state=True)
    state = runner.start(issue.number, DEMO_BOT)
    project_id = state["project_id"]
    state, stop = runner.advance(project_id, DEMO_BOT)
    print(f"\n{stop.reason}")
    if state["status"] != names.WAITING:
        echo(status_table(state))
        return 1

    approver = default_actor()
    print(f"\napproving the {state['current_stage']} gate as {approver}\n")
    runner.approve(project_id, approver)
    state, stop = runner.advance(project_id, DEMO_BOT)

    project_dir = folder / names.SOMAS_DIR / names.PROJECTS_DIR / project_id
    relative = project_dir.relative_to(folder)
    branch = names.project_branch_for(project_id)
    print()
    echo(status_table(state))
    print(
        f"\nfiles:\n"
        f"  state        {project_dir / names.STATE_FILE}\n"
        f"  audit log    {project_dir / names.TRANSITIONS_FILE}\n"
        f"  artifacts    {project_dir / names.ARTIFACTS_DIR}/\n"
        f"  code         branch {branch}\n"
        f"  issue        {tracker.issues_dir / f'{issue.number}.json'}\n"
        f"\ntry it (the operations runbook's own commands, and ours):\n"
        f"  cd {folder}\n"
        f"  jq '.status, .current_stage' {relative / names.STATE_FILE}\n"
        f"  tail -10 {relative / names.TRANSITIONS_FILE}\n"
        f"  git log --oneline {relative}/\n"
        f"  git log --stat {branch}\n"
        f"  somas health {project_id}"
    )
    return 0 if state["status"] == names.COMPLETED else 1
