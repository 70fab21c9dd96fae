"""The runbook's "Debugger Agent: invoked automatically on validation failures".

When validation's quality gate fails and the stage has attempts left, the `debugger` agent gets
the test results (regressions first), the change (`git diff base...branch`, bounded) and the
files the failing tracebacks and the change point at (`validation.repo_facts.debugger_files`).
With tools (its default) it works on the project branch in the tool loop, reading and editing
those files and running the suite; without, it replies with whole files in the implementation
format. Either way the fix is committed through the same path as the implementation stage, and
the next validation attempt tests it. It runs at most once between two validation attempts, so
the stage's `max_retries` bounds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from somas_action.config.schemas import first_problem, load_schema
from somas_action.core import names, resilience_events
from somas_action.core.domain import ErrorRecord, JsonObject, State
from somas_action.core.error_kinds import INVALID_OUTPUT
from somas_action.core.errors import AttemptFailed, ClassifiedError, ProviderError, WorkspaceError
from somas_action.core.events import EventType
from somas_action.core.paths import confined_path
from somas_action.core.ports import AgentProvider, AgentRequest, Observation
from somas_action.core.settings import AgentConfig, Config, StageConfig
from somas_action.core.toolloop import Finished
from somas_action.pipeline import resilience_steps
from somas_action.pipeline.agent_schemas import DEBUGGER, DEBUGGER_OUTPUT
from somas_action.pipeline.recorder import Recorder
from somas_action.pipeline.stage_handlers import StageHandlers
from somas_action.pipeline.stage_inputs import change_input, test_results_summary
from somas_action.pipeline.tool_stage import AgentWork
from somas_action.state.store import ProjectStore
from somas_action.validation.repo_facts import debugger_files

OUTPUT_SCHEMA = DEBUGGER_OUTPUT
FIX_ARTIFACT = "debugger_fix.json"


@dataclass(frozen=True)
class Debugger:
    """What the debugger step needs from the run: its recorder, provider, handlers, config."""

    recorder: Recorder
    provider: AgentProvider
    handlers: StageHandlers
    config: Config

    @property
    def work(self) -> AgentWork:
        """The tool loop, on this run's recorder and provider."""
        handlers = self.handlers
        return AgentWork(
            self.recorder,
            self.provider,
            handlers.workspace,
            self.config,
            handlers,
            self.recorder.clock,
        )

    def branch_files(self, branch: str, results: JsonObject) -> list[dict[str, str]]:
        """The files the failures and the change point at, with their content (bounded)."""
        settings = self.config.workspace
        git = self.handlers.workspace
        try:
            chosen = debugger_files(
                git, self.handlers.base_branch, f"refs/heads/{branch}", results, settings.max_files
            )
        except WorkspaceError:
            return []  # no base to compare with: the debugger reads the branch with its tools
        files = []
        for path in chosen:
            try:
                confined_path(path, settings.allowed_paths)
            except WorkspaceError:
                continue  # shown in tracebacks but not the agent's to change
            content = git.git("show", f"refs/heads/{branch}:{path}")
            if len(content.encode()) <= settings.max_file_bytes:
                files.append({"path": path, "content": content})
        return files

    def _inputs(self, store: ProjectStore, state: State) -> JsonObject:
        issue = store.first_event()["data"]["issue"]
        results_path = store.artifacts_dir / names.TEST_RESULTS_ARTIFACT
        results = (
            json.loads(results_path.read_text(encoding="utf-8")) if results_path.exists() else {}
        )
        budget = self.config.tool_loop.diff_chars
        branch = names.project_branch_for(state["project_id"])
        inputs: JsonObject = {
            "issue": {"number": issue["number"], "title": issue["title"], "body": issue["body"]},
            "test_results": test_results_summary(results, budget) if results else {},
            "change": change_input(
                self.handlers.workspace, self.handlers.base_branch, branch, budget
            ),
        }
        inputs["files"] = self.branch_files(branch, results) if results else []
        return inputs

    def fix_validation(
        self,
        agent: AgentConfig,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        attempt: int,
        actor: str,
        deadline: float | None,
    ) -> State:
        """Ask the debugger for a fix of the failing tests and commit it; record what happened."""
        observations: list[Observation] = []
        inputs = self._inputs(store, state)
        request = AgentRequest(
            project_id=state["project_id"],
            stage=stage.name,
            agent=DEBUGGER,
            attempt=attempt,
            instructions=agent.instructions,
            inputs=inputs,
            model=agent.model,
            output_schema=load_schema(OUTPUT_SCHEMA),
            options=resilience_steps.call_options(
                self.config, state, agent, deadline, observations
            ),
        )
        failing = [f["test"] for f in (inputs["test_results"].get("failures") or [])]
        model = agent.model.as_dict() if agent.model else None
        invoked = {"agent": DEBUGGER, "model": model, "failing_tests": failing[:20]}
        state = self._record(
            store, state, EventType.DEBUGGER_INVOKED, "invoked", attempt, actor, invoked
        )
        error: ErrorRecord | None = None
        try:
            state, output = self._reply(store, state, agent, request, actor, deadline)
            problem = first_problem(OUTPUT_SCHEMA, output)
            if problem:
                raise AttemptFailed(f"agent {DEBUGGER} reply: {problem}", INVALID_OUTPUT)
            fix = self.handlers.implement(state, output)
            written = store.write_artifact(FIX_ARTIFACT, dict(fix))
        except ClassifiedError as exc:
            error = exc.record()
        state = resilience_steps.record_observations(
            self.recorder, store, state, observations, stage.name, attempt, actor
        )
        if error is not None:
            failed = {"error": error}
            return self._record(
                store, state, EventType.DEBUGGER_FAILED, "failed", attempt, actor, failed
            )
        data = {
            "commit": fix["commit"],
            "files": fix["files"],
            "artifact": FIX_ARTIFACT,
            # `somas verify` checks the file against it, as for every artifact.
            "sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
        }
        return self._record(
            store, state, EventType.DEBUGGER_FIX_COMMITTED, "committed", attempt, actor, data
        )

    def _reply(
        self,
        store: ProjectStore,
        state: State,
        agent: AgentConfig,
        request: AgentRequest,
        actor: str,
        deadline: float | None,
    ) -> tuple[State, JsonObject]:
        """The fix: from a tool loop on the branch (files named, not given), else one reply."""
        work = self.work
        plan = work.plan(request.stage, agent, request)
        if plan is None:
            return state, self.provider.invoke(request)
        request.inputs["files_to_look_at"] = [f["path"] for f in request.inputs.pop("files")]
        # Each debugger run gets the latest test results: a stopped one is not resumed.
        state, result = work.run(
            store, state, dataclasses.replace(plan, resumable=False), actor, deadline
        )
        if not isinstance(result.outcome, Finished):
            stopped = result.outcome
            raise ProviderError(stopped.reason, kind=stopped.kind, retry_after=stopped.retry_after)
        return state, work.reply_of(result)

    def _record(
        self,
        store: ProjectStore,
        state: State,
        event_type: EventType,
        status: str,
        attempt: int,
        actor: str,
        data: JsonObject,
    ) -> State:
        ctx = self.recorder.step_context(actor, state)
        drafts = resilience_events.debugger_drafts(state, event_type, status, attempt, data, ctx)
        return self.recorder.commit(store, state, drafts)
