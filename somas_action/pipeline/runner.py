"""Runs commands against a project: loads state, asks the engine, performs effects, commits."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from somas_action.config.loader import load_agent, load_agents
from somas_action.config.schemas import first_problem, load_schema
from somas_action.core import engine, names
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import (
    ArtifactRecord,
    EventDraft,
    GateResult,
    IssueSnapshot,
    JsonObject,
    Replay,
    State,
)
from somas_action.core.engine import Context, RunStage, Stop
from somas_action.core.error_kinds import INVALID_OUTPUT, QUALITY_GATE, RUN_DEADLINE, policy_for
from somas_action.core.errors import AttemptFailed, ClassifiedError, CommandRefused, LogMoved
from somas_action.core.gates import GateInputs, evaluate
from somas_action.core.ports import AgentProvider, AgentRequest, Deferral, Observation, Tracker
from somas_action.core.settings import AgentConfig, Config, StageConfig
from somas_action.pipeline import resilience_steps, review_flow
from somas_action.pipeline.agent_schemas import DEBUGGER, output_schema_name
from somas_action.pipeline.debugger import Debugger
from somas_action.pipeline.lease import project_lease
from somas_action.pipeline.loading import open_project
from somas_action.pipeline.outcomes import ChangesRequested, Deferred, Failure, Outcome, Success
from somas_action.pipeline.recorder import (
    BatchSink,
    EventSink,
    Recorder,
    _ignore_batch,
    _ignore_event,
)
from somas_action.pipeline.safepoints import SafePoints
from somas_action.pipeline.stage_handlers import StageHandlers
from somas_action.pipeline.tool_stage import AgentWork
from somas_action.pipeline.watch import RunStopped
from somas_action.state.git import GitWorkspace
from somas_action.state.store import ProjectStore


@dataclass
class Services:
    """Everything a run needs, injected (tests swap the clock, provider and tracker)."""

    repo: Path
    config: Config
    provider: AgentProvider
    tracker: Tracker
    clock: Clock
    on_event: EventSink = field(default=_ignore_event)
    # Called once per committed batch, before the mirror (state branch, git, Actions output).
    on_commit: BatchSink = field(default=_ignore_batch)
    base_branch: str = names.DEFAULT_BASE_BRANCH
    # Seconds one run may work (None: no limit); a wait that does not fit parks the project.
    run_budget_seconds: float | None = None
    # How long `advance` waits for another run of the same project to finish before refusing.
    lease_wait_seconds: float = 900.0


class Runner:
    """One entry point per command; each returns the project's new state."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.workspace = GitWorkspace(services.repo)
        self.recorder = Recorder(
            services.clock, services.tracker, services.on_event, services.on_commit
        )
        self.handlers = StageHandlers(
            services.config.workspace,
            services.tracker,
            self.workspace,
            services.base_branch,
            services.config.validation,
        )
        self.work = AgentWork(
            self.recorder,
            services.provider,
            self.workspace,
            services.config,
            self.handlers,
            services.clock,
        )
        self.debugger = Debugger(self.recorder, services.provider, self.handlers, services.config)
        self.safepoints = SafePoints(
            self.recorder,
            services.config,
            services.clock,
            reload=lambda project_id, actor: self.load(project_id, actor)[1],
            replay_for=self._replay_for,
        )
        self._agents: dict[str, AgentConfig] | None = None

    # -- helpers -------------------------------------------------------------------------------

    def context(self, actor: str, command_id: str) -> Context:
        """A command context stamped with the injected clock."""
        return self.recorder.context(actor, command_id)

    def commit(self, store: ProjectStore, state: State | None, drafts: list[EventDraft]) -> State:
        """Durably record drafts, then report, hand the batch to `on_commit`, and mirror."""
        return self.recorder.commit(store, state, drafts)

    def store(self, project_id: str) -> ProjectStore:
        """The store of a project in this repository."""
        return ProjectStore(self.s.repo, project_id)

    def load(self, project_id: str, actor: str) -> tuple[ProjectStore, State]:
        """Load a project; changes made to its files by hand are recorded as events first."""
        store = self.store(project_id)
        return store, open_project(self.recorder, store, actor)

    @property
    def agents(self) -> dict[str, AgentConfig]:
        """Every agent the pipeline names, validated once per run."""
        if self._agents is None:
            self._agents = load_agents(self.s.repo, self.s.config)
        return self._agents

    # -- commands ------------------------------------------------------------------------------

    def start(self, issue_number: int, actor: str, delivery_id: str | None = None) -> State:
        """Open the project for an issue; a second start of the same issue changes nothing."""
        project_id = names.project_id_for(issue_number)
        store = self.store(project_id)
        if store.exists():
            _, state = self.load(project_id, actor)
            return state
        issue = self.s.tracker.get_issue(issue_number)
        self.agents  # noqa: B018 - validate every agent file before anything is recorded
        payload: IssueSnapshot = {
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "url": issue.url,
        }
        ctx = self.context(actor, delivery_id or f"start:{issue_number}")
        return self.commit(
            store, None, engine.create_project(project_id, payload, self.s.config, ctx)
        )

    def approve(self, project_id: str, actor: str, delivery_id: str | None = None) -> State:
        """Approve the open human gate."""
        store, state = self.load(project_id, actor)
        ctx = self.context(actor, delivery_id or f"approve:{state['last_event']['hash']}")
        if ctx.command_id in state["applied_commands"]:
            return state
        return self.commit(store, state, engine.approve(state, self.s.config, ctx))

    def reject(
        self, project_id: str, actor: str, reason: str, delivery_id: str | None = None
    ) -> State:
        """Reject the open human gate, sending the project back to the gate's `on_reject` stage."""
        store, state = self.load(project_id, actor)
        ctx = self.context(actor, delivery_id or f"reject:{state['last_event']['hash']}")
        if ctx.command_id in state["applied_commands"]:
            return state
        return self.commit(store, state, engine.reject(state, self.s.config, reason, ctx))

    def advance(self, project_id: str, actor: str) -> tuple[State, Stop]:
        """Run stages until a human gate, a failure that needs a person, or completion.

        One run at a time per project (a lease); another run of the same project waits for it
        or refuses clearly. Pause, cancel, stop-all and breakers are checked between every step,
        when an agent's reply arrives and during every wait (`pipeline.watch`). A parked project
        continues here once its reason has passed; when no provider can be called (or the run
        is out of time) the project is parked instead, with a checkpoint.
        """
        if not self.workspace.is_repository():
            raise CommandRefused(
                f"{self.s.repo}: not a git repository; SOMAS commits each stage's work to a "
                "branch of it: `git init` and commit, then advance"
            )
        with project_lease(self.s.repo, project_id, actor, self.s.lease_wait_seconds, self._say):
            return self._advance(project_id, actor)

    def _advance(self, project_id: str, actor: str) -> tuple[State, Stop]:
        store, state = self.load(project_id, actor)
        state = self.safepoints.close_abandoned(store, state, actor)
        deadline = self._deadline()
        state = resilience_steps.sync_breakers(self.recorder, self.s.repo, store, state, actor)
        config = self.s.config
        budget = sum(stage.max_retries for stage in config.stages) + len(config.stages)
        self.safepoints.watch(store, state, actor)
        try:
            for _ in range(budget * 2):
                try:
                    state = self.safepoints.between_steps(store, state, actor)
                    step = engine.next_step(state, config)
                    if isinstance(step, Stop):
                        return state, step
                    agent = self.agents[step.stage.agent]
                    deferral = resilience_steps.preflight(
                        self.s.clock, self.s.provider, agent, deadline
                    )
                    if deferral is not None:
                        state = resilience_steps.park(
                            self.recorder, store, state, step.stage.name, deferral, None, actor
                        )
                        return state, resilience_steps.parked_stop(state)
                    if state["status"] == names.PARKED:
                        state = resilience_steps.unpark(self.recorder, store, state, actor)
                    state = self._run_attempt(store, state, step, actor, deadline)
                    if state["status"] == names.PARKED:
                        return state, resilience_steps.parked_stop(state)
                except (RunStopped, LogMoved):
                    # Someone else recorded something (a pause, a cancel, an approval): look
                    # again; an attempt left open by the stop is recorded as abandoned.
                    store, state = self.load(project_id, actor)
                    state = self.safepoints.abandon_open(store, state, actor, "stopped")
        except KeyboardInterrupt:
            self._record_cancel(store, actor)
            raise
        finally:
            self.safepoints.unwatch()
        return state, Stop(f"{project_id}: stopped after {budget * 2} attempts in one run", code=1)

    # -- controls while running (pipeline.safepoints) -------------------------------------------

    def _say(self, line: str) -> None:
        """A progress line (to stderr: stdout may be JSON)."""
        print(line, file=sys.stderr, flush=True)

    def _replay_for(self, store: ProjectStore, state: State, stage: StageConfig) -> Replay:
        """What a dead letter of `stage` needs to re-run its current attempt."""
        attempt = state["stages"][stage.name]["attempts"]
        request = self._request(store, state, stage, attempt, None, [])
        model = request.model.as_dict() if request.model else None
        return {"agent": request.agent, "model": model, "inputs": request.inputs}

    def _record_cancel(self, store: ProjectStore, actor: str) -> None:
        """After SIGINT/SIGTERM: reload (repairing a torn write) and mark the attempt undone."""
        reading = store.read()
        state = store.settle(reading)
        ctx = self.context(actor, f"cancel:{state['last_event']['hash']}")
        drafts = engine.cancel_attempt(state, "run cancelled (SIGINT/SIGTERM)", ctx)
        if drafts:
            store.commit(state, drafts)

    def _deadline(self) -> float | None:
        budget = self.s.run_budget_seconds
        return None if budget is None else self.s.clock.monotonic() + budget

    # -- agents written outside the run (somas-agent.yml) -------------------------------------

    def invoke_agent(
        self, project_id: str, agent_name: str, stage_name: str, instructions: str
    ) -> JsonObject:
        """One agent call for a stage, with an operator's instructions; records nothing.

        This is the read-only half of `somas-agent.yml`: it runs without write access, and its
        reply is applied (validated, as any reply) by `apply_reply` in a separate job.
        """
        store = self.store(project_id)
        state, _ = store.load()
        stage = replace(self.s.config.stage(stage_name), agent=agent_name)
        attempt = state["stages"][stage.name]["attempts"] + 1
        request = self._request(store, state, stage, attempt, None, [])
        request.inputs["operator_instructions"] = instructions  # data for the agent, not a prompt
        return self.s.provider.invoke(request)

    def apply_reply(
        self,
        project_id: str,
        agent_name: str,
        stage_name: str,
        reply: JsonObject,
        actor: str,
        delivery_id: str | None = None,
    ) -> State:
        """Apply an agent reply made elsewhere as an attempt of the project's current stage."""
        store, state = self.load(project_id, actor)
        if delivery_id and delivery_id in state["applied_commands"]:
            return state
        if state["current_stage"] != stage_name:
            raise CommandRefused(
                f"{project_id} is at {state['current_stage']}, the reply is for {stage_name}; "
                "run the agent again"
            )
        if state["status"] in (names.COMPLETED, names.CANCELLED, names.PAUSED):
            raise CommandRefused(f"{project_id} is {state['status']}; no reply is applied")
        stage = replace(self.s.config.stage(stage_name), agent=agent_name)
        step = RunStage(stage=stage, attempt=state["stages"][stage_name]["attempts"] + 1)
        return self._run_attempt(store, state, step, actor, reply=reply, delivery_id=delivery_id)

    # -- one attempt ---------------------------------------------------------------------------

    def _agent(self, name: str) -> AgentConfig:
        """A pipeline agent, or any other defined agent an operator names."""
        return self.agents.get(name) or load_agent(self.s.repo, name)

    def _request(
        self,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        attempt: int,
        deadline: float | None,
        observations: list[Observation],
    ) -> AgentRequest:
        agent = self._agent(stage.agent)
        return AgentRequest(
            project_id=state["project_id"],
            stage=stage.name,
            agent=agent.name,
            attempt=attempt,
            instructions=agent.instructions,
            inputs=self._agent_inputs(store, state, stage),
            model=agent.model,
            output_schema=load_schema(_output_schema_name(stage)),
            options=resilience_steps.call_options(
                self.s.config, state, agent, deadline, observations
            ),
        )

    def _run_attempt(
        self,
        store: ProjectStore,
        state: State,
        step: RunStage,
        actor: str,
        deadline: float | None = None,
        reply: JsonObject | None = None,
        delivery_id: str | None = None,
    ) -> State:
        """Start an attempt, get its outcome, and record it."""
        stage, attempt = step.stage, step.attempt
        observations: list[Observation] = []
        request = self._request(store, state, stage, attempt, deadline, observations)
        model = request.model.as_dict() if request.model else None
        ctx = self.context(actor, delivery_id or f"advance:{state['metrics']['events']}")
        state = self.commit(store, state, engine.start_attempt(state, stage, attempt, model, ctx))
        try:
            state, answer, halted = self.work.converse(
                store, state, stage, self._agent(stage.agent), request, actor, deadline, reply
            )
            outcome = halted or self._attempt(store, state, stage, request, answer)
        except RunStopped as stopped:
            _, state = self.load(state["project_id"], actor)
            return self.safepoints.abandon_open(store, state, actor, "stopped", stopped.output)
        replay: Replay = {"agent": request.agent, "model": model, "inputs": request.inputs}
        for _ in range(3):
            try:
                return self._record_outcome(
                    store, state, step, outcome, replay, observations, actor, deadline, reply
                )
            except LogMoved:
                # Someone recorded something meanwhile: record the outcome after it, unless
                # it means stop (then the attempt is abandoned, its reply kept).
                _, state = self.load(state["project_id"], actor)
                ours = engine.open_attempt(state) == (stage.name, attempt)
                if not ours or self.safepoints.stop_reason(state):
                    output = outcome.output if isinstance(outcome, Success) else None
                    return self.safepoints.abandon_open(store, state, actor, "stopped", output)
        raise LogMoved(f"{state['project_id']}: the log kept moving; run advance again")

    def _record_outcome(
        self,
        store: ProjectStore,
        state: State,
        step: RunStage,
        outcome: Outcome,
        replay: Replay,
        observations: list[Observation],
        actor: str,
        deadline: float | None,
        reply: JsonObject | None,
    ) -> State:
        """Record what the attempt came to (and wait before the next one after a failure)."""
        stage, attempt = step.stage, step.attempt
        state = resilience_steps.record_observations(
            self.recorder, store, state, observations, stage.name, attempt, actor
        )
        if isinstance(outcome, Success):
            return self._record_success(store, state, step, outcome, actor)
        if isinstance(outcome, ChangesRequested):
            return review_flow.record(self.recorder, store, state, step, outcome, actor)
        if isinstance(outcome, Deferred):
            return resilience_steps.park(
                self.recorder, store, state, stage.name, outcome.deferral, attempt, actor
            )
        state = self._record_failure(store, state, step, outcome, replay, actor)
        if state["status"] == names.FAILED:
            self.handlers.withdraw_pull_request(state)
            return state
        if outcome.error["kind"] == QUALITY_GATE and stage.handler == "validation":
            state = self._debug(store, state, stage, attempt, actor, deadline)
        if reply is not None:
            return state  # an applied reply failed: nothing to wait for, the next run retries
        return self._wait_before_retry(store, state, stage, attempt, actor, deadline)

    def _attempt(
        self,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        request: AgentRequest,
        reply: JsonObject | None,
    ) -> Outcome:
        """Get the agent's reply (or use the one given), check it, do the stage's work."""
        artifacts: list[ArtifactRecord] = []
        gate_results: list[GateResult] = []
        try:
            output = reply if reply is not None else self.s.provider.invoke(request)
            self.safepoints.reply_arrived(output)
            problem = first_problem(_output_schema_name(stage), output)
            if problem:
                raise AttemptFailed(f"agent {request.agent} reply: {problem}", INVALID_OUTPUT)
            artifacts, test_results = self.handlers.write_outputs(store, state, stage, output)
            names_written = {a["name"] for a in artifacts}
            inputs = GateInputs(output=output, artifacts=names_written, test_results=test_results)
            gate_results = evaluate(stage.quality_gates, inputs)
            changes = review_flow.outcome_for(state, stage, output, artifacts, gate_results)
            if changes is not None:
                return changes
            failed = [g for g in gate_results if not g["passed"]]
            if failed:
                detail = "; ".join(f"{g['name']}: {g['detail']}" for g in failed)
                raise AttemptFailed(detail, QUALITY_GATE)
        except ClassifiedError as exc:
            deferral = resilience_steps.deferral_for(exc, self.s.clock)
            if deferral is not None:
                return Deferred(deferral)
            return Failure(exc.record(), artifacts, gate_results)
        return Success(output, artifacts, gate_results)

    def _record_success(
        self, store: ProjectStore, state: State, step: RunStage, outcome: Success, actor: str
    ) -> State:
        """The attempt's events: output accepted, artifacts, gates, then the gate or next stage."""
        ctx = self.recorder.step_context(actor, state)
        drafts = engine.finish_attempt(
            state,
            self.s.config,
            step.stage,
            step.attempt,
            output_digest=engine.output_digest(outcome.output),
            artifacts=outcome.artifacts,
            gate_results=outcome.gate_results,
            ctx=ctx,
        )
        return self.commit(store, state, drafts)

    def _record_failure(
        self,
        store: ProjectStore,
        state: State,
        step: RunStage,
        outcome: Failure,
        replay: Replay,
        actor: str,
    ) -> State:
        """The failed attempt's events; when attempts are used up, the stage fails for good."""
        stage, attempt = step.stage, step.attempt
        final = not policy_for(outcome.error["kind"]).retry_stage
        exhausted = final or attempt >= stage.max_retries
        trace = resilience_steps.trace_for(store, stage.name) if exhausted else None
        ctx = self.recorder.step_context(actor, state)
        drafts = engine.fail_attempt(
            state,
            stage,
            attempt,
            outcome.error,
            replay,
            ctx,
            outcome.artifacts,
            outcome.gate_results,
            final=final,
            trace=trace,
        )
        return self.commit(store, state, drafts)

    def _debug(
        self,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        attempt: int,
        actor: str,
        deadline: float | None,
    ) -> State:
        """Let the debugger agent fix the failing tests before the next validation attempt."""
        if DEBUGGER not in stage.secondary_agents:
            return state
        agent = self.agents[DEBUGGER]
        return self.debugger.fix_validation(agent, store, state, stage, attempt, actor, deadline)

    def _wait_before_retry(
        self,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        attempt: int,
        actor: str,
        deadline: float | None,
    ) -> State:
        """Back off before the next attempt, or park if the wait does not fit in the run."""
        wait = self.s.config.pipeline.retry.delay(attempt)
        if resilience_steps.affordable(self.s.clock, deadline, wait):
            self.s.clock.sleep(wait)
            return state
        retry_at = self.s.clock.now() + timedelta(seconds=wait)
        deferral = Deferral(
            reason=f"the {wait:g}s wait before attempt {attempt + 1} does not fit in the run",
            kind=RUN_DEADLINE,
            retry_at=format_ts(retry_at),
        )
        return resilience_steps.park(self.recorder, store, state, stage.name, deferral, None, actor)

    def _agent_inputs(self, store: ProjectStore, state: State, stage: StageConfig) -> JsonObject:
        issue = store.first_event()["data"]["issue"]
        previous = {}
        for name in state["pipeline"][: state["pipeline"].index(stage.name)]:
            path = store.artifacts_dir / f"{name}.output.json"
            if path.exists():
                previous[name] = json.loads(path.read_text(encoding="utf-8"))
        inputs: JsonObject = {
            "issue": {"number": issue["number"], "title": issue["title"], "body": issue["body"]},
            "previous_outputs": previous,
        }
        record = state["stages"][stage.name]
        if record["last_error"]:
            inputs["previous_attempt_error"] = record["last_error"]
        gate = state["human_gate"]
        if gate and gate["status"] == names.GATE_REJECTED:
            inputs["rejection"] = {
                "stage": gate["stage"],
                "by": gate["decided_by"],
                "reason": gate["reason"],
            }
        inputs.update(self.work.extra_inputs(store, state, stage))
        return inputs


def _output_schema_name(stage: StageConfig) -> str:
    return output_schema_name(stage.name)
