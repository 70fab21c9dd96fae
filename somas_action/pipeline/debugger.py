"""The runbook's "Debugger Agent: invoked automatically on validation failures".

When validation's quality gate fails and the stage has attempts left, the `debugger` agent gets
the failing test results and the project branch's files; its reply (files, in the
implementation format) is committed through the same path as the implementation stage, and the
next validation attempt tests it. It runs at most once between two validation attempts, so
the stage's `max_retries` bounds it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from somas_action.config.loader import StageConfig
from somas_action.config.schemas import first_problem, load_schema
from somas_action.core import events as ev
from somas_action.core import names, resilience_events
from somas_action.core.error_kinds import INVALID_OUTPUT, WORKSPACE, error_record
from somas_action.core.errors import ProviderError, WorkspaceError
from somas_action.core.ports import AgentRequest, Observation
from somas_action.core.projection import State
from somas_action.pipeline import resilience_steps
from somas_action.pipeline.stage_handlers import AttemptFailed
from somas_action.state.git import confined_path
from somas_action.state.store import ProjectStore

if TYPE_CHECKING:
    from somas_action.pipeline.runner import Runner

DEBUGGER = "debugger"
OUTPUT_SCHEMA = "agent-output/implementation"
FIX_ARTIFACT = "debugger_fix.json"


def branch_files(runner: Runner, branch: str) -> list[dict[str, str]]:
    """The project branch's files an agent may change, with their content (bounded)."""
    settings = runner.s.config.raw["workspace"]
    listing = runner.workspace.git("ls-tree", "-r", "--name-only", f"refs/heads/{branch}")
    files = []
    for path in listing.splitlines():
        try:
            confined_path(path, settings["allowed_paths"])
        except WorkspaceError:
            continue
        content = runner.workspace.git("show", f"refs/heads/{branch}:{path}")
        if len(content.encode()) <= settings["max_file_bytes"]:
            files.append({"path": path, "content": content})
        if len(files) >= settings["max_files"]:
            break
    return files


def _inputs(runner: Runner, store: ProjectStore, state: State) -> dict[str, Any]:
    issue = store.first_event()["data"]["issue"]
    results_path = store.artifacts_dir / names.TEST_RESULTS_ARTIFACT
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.exists() else {}
    return {
        "issue": {"number": issue["number"], "title": issue["title"], "body": issue["body"]},
        "test_results": {
            key: results.get(key)
            for key in ("total", "passed", "failed", "errors", "failures", "output_tail")
        },
        "files": branch_files(runner, names.project_branch_for(state["project_id"])),
    }


def fix_validation(
    runner: Runner,
    store: ProjectStore,
    state: State,
    stage: StageConfig,
    attempt: int,
    actor: str,
    deadline: float | None,
) -> State:
    """Ask the debugger for a fix of the failing tests and commit it; record what happened."""
    if DEBUGGER not in stage.secondary_agents:
        return state
    agent = runner.agents[DEBUGGER]
    observations: list[Observation] = []
    request = AgentRequest(
        project_id=state["project_id"],
        stage=stage.name,
        agent=DEBUGGER,
        attempt=attempt,
        instructions=agent.raw["instructions"],
        inputs=_inputs(runner, store, state),
        model=agent.raw.get("model"),
        output_schema=load_schema(OUTPUT_SCHEMA),
        options=resilience_steps.call_options(runner, state, agent, deadline, observations),
    )
    failing = [f["test"] for f in request.inputs["test_results"].get("failures") or []]
    state = _record(
        runner,
        store,
        state,
        ev.DEBUGGER_INVOKED,
        "invoked",
        attempt,
        actor,
        {"agent": DEBUGGER, "model": request.model, "failing_tests": failing[:20]},
    )
    try:
        output = runner.s.provider.invoke(request)
        problem = first_problem(OUTPUT_SCHEMA, output)
        if problem:
            raise AttemptFailed(INVALID_OUTPUT, f"agent {DEBUGGER} reply: {problem}")
        fix = runner.handlers.implement(state, output)
        written = store.write_artifact(FIX_ARTIFACT, fix)
    except ProviderError as exc:
        error = error_record(exc)
    except AttemptFailed as exc:
        error = exc.error
    except WorkspaceError as exc:
        error = {"kind": WORKSPACE, "message": str(exc)}
    else:
        state = resilience_steps.record_observations(
            runner, store, state, observations, stage.name, attempt, actor
        )
        data = {
            "commit": fix["commit"],
            "files": fix["files"],
            "artifact": FIX_ARTIFACT,
            # `somas verify` checks the file against it, as for every artifact.
            "sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
        }
        return _record(
            runner, store, state, ev.DEBUGGER_FIX_COMMITTED, "committed", attempt, actor, data
        )
    state = resilience_steps.record_observations(
        runner, store, state, observations, stage.name, attempt, actor
    )
    return _record(
        runner, store, state, ev.DEBUGGER_FAILED, "failed", attempt, actor, {"error": error}
    )


def _record(
    runner: Runner,
    store: ProjectStore,
    state: State,
    event_type: str,
    status: str,
    attempt: int,
    actor: str,
    data: dict[str, Any],
) -> State:
    ctx = runner.context(actor, f"advance:{state['metrics']['events']}")
    drafts = resilience_events.debugger_drafts(state, event_type, status, attempt, data, ctx)
    return runner.commit(store, state, drafts)
