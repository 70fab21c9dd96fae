"""A stage's agent as an external coding-agent CLI (`engine:` in its agent file; docs/engines.md).

One attempt: the engine's breaker must let it through and the project's budget must have
something left; the pinned engine is installed; a clone of the project branch is made; SOMAS's
tools are served over MCP; the engine runs in the sandbox with its own model key and nothing
else; then its transcript and tool outputs become artifacts, its calls and its end events
(`engine_tool_called`, `engine_run_finished`, whose usage counts against the budget).

- **Finished**: the changed files are the stage's reply (an editing stage), or the reply the
  engine wrote to `.somas-reply.json` (any other stage), checked and applied like any reply.
- **A limit** (time, turns, quota, rate limit): the changed files are committed to the project
  branch and the project parks saying why; the next run tells the engine what the earlier one
  did and where it stopped, on the branch that holds its work.
- **A crash**: the attempt fails (its error tail is the reason) and counts against the breaker.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from somas_action.core import names, resilience_events
from somas_action.core.breaker import Transition
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import Event, JsonObject, State
from somas_action.core.error_kinds import (
    BUDGET,
    CIRCUIT_OPEN,
    CONFIG,
    PERMANENT,
    QUOTA,
    RATE_LIMITED,
    RUN_DEADLINE,
    TIMEOUT,
    TURN_LIMIT,
    WORKSPACE,
)
from somas_action.core.errors import AttemptFailed, ConfigError, SomasError
from somas_action.core.events import EventType
from somas_action.core.ports import AgentRequest, Deferral, Observation
from somas_action.core.settings import AgentConfig, Config, StageConfig
from somas_action.pipeline.outcomes import Deferred, Failure, Outcome
from somas_action.pipeline.recorder import Recorder
from somas_action.pipeline.stage_handlers import StageHandlers
from somas_action.pipeline.tests_tool import SNAPSHOT_ENV, report_for_model
from somas_action.pipeline.validation_stage import run_suite
from somas_action.providers.engines.catalog import ENGINES, key_env_for
from somas_action.providers.engines.mcp_tools import McpToolServer, ToolCallRecord, as_observation
from somas_action.providers.engines.outcome import MAX_TURNS
from somas_action.providers.engines.process import ProcessResult, Sandbox, run_in_process_group
from somas_action.providers.engines.prompt import build_prompt, earlier_run_note
from somas_action.providers.engines.runner import (
    EngineOutcome,
    EngineRun,
    outcome_observation,
    resolve_executable,
    run_engine,
)
from somas_action.providers.engines.spec import EngineSpec, parse_engine_spec
from somas_action.providers.engines.worktree import Scratch, changed_contents, scratch_checkout
from somas_action.sandbox.bubblewrap import bwrap_argv
from somas_action.sandbox.isolation import SandboxUnavailable, open_sandbox
from somas_action.state.breakers import CircuitBreaker
from somas_action.state.git import GitWorkspace
from somas_action.state.jsonio import atomic_write_text
from somas_action.state.store import ProjectStore

# What the engine's outcome kinds park as (the project waits; its work is on the branch).
PARK_AS = {TIMEOUT: TIMEOUT, MAX_TURNS: TURN_LIMIT, QUOTA: QUOTA, RATE_LIMITED: RATE_LIMITED}
# Waits before the next run may start the engine again; None: when a person acts (credit).
RESUME_AFTER_SECONDS: dict[str, float | None] = {
    TIMEOUT: 0.0,
    MAX_TURNS: 0.0,
    RATE_LIMITED: 60.0,
    QUOTA: None,
}
# Outcomes that say the service (or the engine) is failing: counted by the engine's breaker.
BREAKER_KINDS = (QUOTA, RATE_LIMITED, "crash")
REPLY_FILE = ".somas-reply.json"
# Before the run's deadline: time kept for committing the engine's work and recording it, and
# the least time worth starting an engine for.
DEADLINE_RESERVE_SECONDS = 60.0
MIN_ENGINE_SECONDS = 30.0
SUMMARY_CHARS = 4000


def engine_service(spec: EngineSpec) -> str:
    """The engine's circuit breaker (`engine-claude-code`): one per engine, shared by runs."""
    return f"engine-{spec.engine}"


@dataclass
class EngineStage:
    """Runs a stage attempt with an engine (AgentWork hands it agents with `engine:`)."""

    recorder: Recorder
    workspace: GitWorkspace
    config: Config
    handlers: StageHandlers
    clock: Clock
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def converse(
        self,
        store: ProjectStore,
        state: State,
        stage: StageConfig,
        agent: AgentConfig,
        request: AgentRequest,
        actor: str,
        edits: bool,
        deadline: float | None = None,
    ) -> tuple[State, JsonObject | None, Outcome | None]:
        """(state, the reply to judge, or the outcome when the engine did not finish).

        `deadline` (the clock's monotonic time) is when the run must stop: the engine gets at
        most the time left before it, less a reserve for committing its work.
        """
        assert agent.engine is not None
        try:
            spec = parse_engine_spec(agent.engine, f".somas/agents/{agent.name}.yml")
        except ConfigError as exc:
            return state, None, _failure(CONFIG, str(exc))
        if deadline is not None:
            left = deadline - self.clock.monotonic() - DEADLINE_RESERVE_SECONDS
            if left < MIN_ENGINE_SECONDS:
                why = (
                    f"the run has {max(left, 0):.0f} s left, too little to start engine "
                    f"{spec.engine}; the next run starts it"
                )
                retry_at = format_ts(self.clock.now())
                return state, None, Deferred(Deferral(why, RUN_DEADLINE, retry_at))
            spec = replace(spec, timeout_seconds=min(spec.timeout_seconds, left))
        service = engine_service(spec)
        breaker = CircuitBreaker(
            service,
            repo=self.workspace.repo,
            clock=self.clock,
            settings=self.config.error_handling.circuit_breaker,
            actor=actor,
        )
        refused = self._refused(spec, breaker, request)
        if refused is not None:
            return state, None, refused
        observations: list[Observation] = []
        _note(observations, breaker.acquire())
        attempt = _Attempt(self, store, state, stage, agent, request, actor, spec, edits)
        try:
            outcome, reply = attempt.run(observations)
        except (SomasError, OSError) as exc:
            # The engine could not be installed or started, or its clone not made: a failed
            # attempt that says why (the breaker is not the engine's fault here).
            breaker.release()
            state = attempt.record(observations)
            kind = CONFIG if isinstance(exc, (ConfigError, SandboxUnavailable)) else WORKSPACE
            return state, None, _failure(kind, f"engine {spec.engine}: {exc}")
        if outcome.kind == "success":
            _note(observations, breaker.record_success())
        elif outcome.kind in BREAKER_KINDS:
            _note(observations, breaker.record_failure(_error_kind(outcome.kind), outcome.reason))
        else:
            breaker.release()
        if outcome.parks:
            try:
                attempt.commit_work(outcome)
            except AttemptFailed as exc:
                # Work outside the allowed paths is not committed (diff.patch keeps it).
                state = attempt.record(observations)
                return state, None, _failure(exc.kind, f"engine {spec.engine}: {exc}")
        state = attempt.record(observations)
        if outcome.kind == "success":
            return state, reply, None
        if outcome.parks:
            return attempt.park(outcome)
        return state, None, _failure(PERMANENT, f"engine {spec.engine}: {outcome.reason}")

    def _refused(
        self, spec: EngineSpec, breaker: CircuitBreaker, request: AgentRequest
    ) -> Outcome | None:
        """Park before starting anything: the breaker is open or the budget is spent."""
        blocked, until = breaker.blocked_until()
        if blocked:
            return Deferred(
                Deferral(
                    reason=f"circuit breaker open for {breaker.service}; engine not started",
                    kind=CIRCUIT_OPEN,
                    retry_at=format_ts(until) if until else None,
                    services=(breaker.service,),
                )
            )
        budget = request.options.budget
        if budget is not None and budget.exhausted:
            why = (
                f"the project budget is spent (${budget.spent_cost_usd:.4f}, "
                f"{budget.spent_tokens} tokens); raise agent_provider.budget and resume"
            )
            return Deferred(Deferral(reason=why, kind=BUDGET, retry_at=None))
        key_env = key_env_for(spec)
        if key_env and not self.environ.get(key_env):
            return _failure(
                CONFIG,
                f"engine {spec.engine} needs its model key in {key_env}: add it as a repository "
                "secret and pass it to the SOMAS step",
            )
        return None


@dataclass
class _Attempt:
    """One engine run for one stage attempt: its folder, its clone, its records."""

    stage_work: EngineStage
    store: ProjectStore
    state: State
    stage: StageConfig
    agent: AgentConfig
    request: AgentRequest
    actor: str
    spec: EngineSpec
    edits: bool
    calls: list[ToolCallRecord] = field(default_factory=list)
    # The changed files (text) without the reply file, once the engine has run.
    files: list[tuple[str, str | None]] = field(default_factory=list)
    folder: str = ""
    isolation: str = "process-group"
    finished: Observation | None = None

    @property
    def branch(self) -> str:
        return names.project_branch_for(self.state["project_id"])

    def run(self, observations: list[Observation]) -> tuple[EngineOutcome, JsonObject | None]:
        """Install, clone, serve the tools, run the engine; keep what it left."""
        work = self.stage_work
        tools_dir = Path(work.config.engines.tools_dir).expanduser()
        executable = resolve_executable(self.spec, tools_dir)
        # The project branch the engine works on (made from HEAD on the first run).
        tip = work.workspace.branch_start(self.branch, create=True)
        events = self.store.read_events()
        earlier = self._earlier_run(events, tip)
        prompt = build_prompt(self._instructions(), self.request.inputs, earlier_run=earlier)
        key = work.environ.get(key_env_for(self.spec), "")
        runs = sum(1 for e in events if self._is_run_of_this_stage(e))
        self.folder = f"engine/{self.stage.name}-a{self.request.attempt}-{runs + 1}"
        with tempfile.TemporaryDirectory(prefix="somas-engine-") as tmp:
            run_dir = Path(tmp)
            with scratch_checkout(work.workspace.repo, self.branch, run_dir / "tree") as scratch:
                tools = CloneTools(scratch, work.workspace, work.handlers.base_branch, work.config)
                server = McpToolServer(
                    tools, self._on_call, max_output_chars=work.config.engines.mcp_max_output_chars
                )
                with server as endpoint:
                    run = EngineRun(self.spec, executable, prompt, key, run_dir, endpoint)
                    sandbox = self._sandbox(executable, scratch, run_dir, tools_dir)
                    outcome = run_engine(run, scratch, sandbox)
                contents = changed_contents(scratch, outcome.diff)
                binary = [p for p, data in contents if data is not None and not _is_text(data)]
                self.files = [
                    (path, None if data is None else data.decode("utf-8"))
                    for path, data in contents
                    if path != REPLY_FILE and path not in binary
                ]
                reply = self._reply(outcome, scratch) if outcome.kind == "success" else None
                if binary:
                    why = f"it wrote binary files ({', '.join(binary)}); SOMAS commits text only"
                    outcome, reply = _as_crash(outcome, why), None
                elif outcome.kind == "success" and reply is None:
                    outcome = _as_crash(outcome, self._why_no_reply())
                (run_dir / "diff.patch").write_text(outcome.diff.patch, encoding="utf-8")
            self._keep(outcome, observations, run_dir)
        return outcome, reply

    # -- before ---------------------------------------------------------------------------------

    def _instructions(self) -> str:
        text = self.agent.instructions
        if self.edits:
            return text
        schema = json.dumps(self.request.output_schema, indent=1)
        return (
            f"{text.strip()}\n\nWhen you are done, write your answer as one JSON object to the "
            f"file `{REPLY_FILE}` at the top of the checkout, matching this JSON Schema "
            f"(nothing else changes in the repository):\n{schema}"
        )

    def _earlier_run(self, events: list[Event], tip: str) -> str:
        """What the last run of this stage left, when it stopped at a limit on this branch."""
        for event in reversed(events):
            if (
                event["event_type"] == EventType.STAGE_COMPLETED
                and event["stage"] == self.stage.name
            ):
                return ""
            if not self._is_run_of_this_stage(event):
                continue
            data = event["data"]
            if event["status"] not in PARK_AS or data.get("commit") != tip:
                return ""
            changed = [c["path"] for c in data.get("changed", [])]
            return earlier_run_note(data.get("reason", ""), data.get("last_words", ""), changed)
        return ""

    def _is_run_of_this_stage(self, event: Event) -> bool:
        return (
            event["event_type"] == EventType.ENGINE_RUN_FINISHED
            and event["stage"] == self.stage.name
        )

    def _sandbox(
        self, executable: str, scratch: Scratch, run_dir: Path, tools_dir: Path
    ) -> Sandbox:
        """The engine's sandbox: bubblewrap showing the clone and its home writable, its git
        folder and its install read-only, nothing else of this machine's files; the network is
        shared (the engine needs its model endpoint). Else the process-group fallback."""
        validation = self.stage_work.config.validation
        box = open_sandbox(validation.isolation)
        self.isolation = box.info.kind
        if box.info.kind != "bubblewrap" or box.bwrap is None:
            return run_in_process_group
        installed = (
            [tools_dir.resolve()] if self.spec.engine != "command" else [Path(executable).parent]
        )
        node = shutil.which("node")
        shown = [*installed, scratch.git_dir]
        if node and ENGINES[self.spec.engine].registry == "npm":
            shown.append(Path(node).resolve().parent.parent)
        writable = [scratch.path, run_dir / "home", run_dir / "tmp"]
        bwrap, masked = box.bwrap, box.masked

        def sandboxed(argv: Any, **kwargs: Any) -> ProcessResult:
            wrapped = bwrap_argv(
                bwrap,
                argv,
                workdir=scratch.path,
                read_only=shown,
                writable=writable,
                network=True,
                masked=masked,
            )
            return run_in_process_group(wrapped, **kwargs)

        for folder in writable:
            folder.mkdir(parents=True, exist_ok=True)
        return sandboxed

    # -- after ----------------------------------------------------------------------------------

    def _on_call(self, record: ToolCallRecord) -> None:
        with _CALLS_LOCK:
            self.calls.append(record)

    def _reply(self, outcome: EngineOutcome, scratch: Scratch) -> JsonObject | None:
        """The stage's reply: the changed files (an editing stage) or `.somas-reply.json`."""
        summary = (outcome.last_words.strip() or f"engine {self.spec.engine} finished")[
            :SUMMARY_CHARS
        ]
        if not self.edits:
            path = scratch.path / REPLY_FILE
            try:
                written = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if not isinstance(written, dict):
                return None
            return {"summary": summary, **written}
        written = [{"path": path, "content": text} for path, text in self.files if text is not None]
        deleted = [path for path, text in self.files if text is None]
        if not written and not deleted:
            return None
        reply: JsonObject = {"summary": summary, "commit_message": summary.splitlines()[0][:200]}
        reply["files"] = written
        if deleted:
            reply["deleted"] = deleted
        return reply

    def _why_no_reply(self) -> str:
        if self.edits:
            return "it finished without changing any file"
        return f"it finished without writing a JSON object to {REPLY_FILE}"

    def _keep(self, outcome: EngineOutcome, observations: list[Observation], run_dir: Path) -> None:
        """The transcript and tool outputs as artifacts; the calls and the end as events."""
        artifacts = self.store.artifacts_dir / self.folder
        for number, call in enumerate(self.calls, 1):
            name = f"{self.folder}/call-{number:03d}-{call.tool}.txt"
            atomic_write_text(self.store.artifacts_dir / name, call.output)
            observation = as_observation(call)
            observation.data["artifact"] = name
            observations.append(observation)
        for source in ("transcript.jsonl", "stderr.log", "prompt.md", "diff.patch"):
            if (run_dir / source).exists():
                artifacts.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run_dir / source, artifacts / source)
        finished = outcome_observation(outcome)
        usage = outcome.usage
        finished.data.update(
            engine=self.spec.engine,
            version=self.spec.version,
            model=self.spec.model,
            transcript=f"{self.folder}/transcript.jsonl",
            last_words=outcome.last_words[:SUMMARY_CHARS],
            isolation=self.isolation,
            tool_calls=len(self.calls),
            # What the budget counts (`core.projection`): the engine's own figures.
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=round(usage.cost_usd or 0.0, 6),
            provider=engine_service(self.spec),
        )
        observations.append(finished)
        self.finished = finished

    def record(self, observations: list[Observation]) -> State:
        """Record the run's observations in order, as one batch."""
        if not observations:
            return self.state
        recorder = self.stage_work.recorder
        ctx = recorder.step_context(self.actor, self.state)
        drafts = resilience_events.observation_drafts(
            self.state, observations, ctx, self.stage.name, self.request.attempt
        )
        self.state = recorder.commit(self.store, self.state, drafts)
        return self.state

    def commit_work(self, outcome: EngineOutcome) -> None:
        """Commit the work so far to the project branch; the end event says where it is."""
        work = self.stage_work
        commit = work.workspace.rev(f"refs/heads/{self.branch}")
        if self.files:
            # The same checks as a finished reply's files: confined paths, bounded sizes.
            checked = work.handlers.checked_changes(self.files)
            message = (
                f"somas({self.state['project_id']}): {self.stage.name} work so far "
                f"({outcome.kind}; the engine continues on the next run)"
            )
            commit = work.workspace.commit_files(self.branch, checked, message)
        if self.finished is not None:
            self.finished.data["commit"] = commit

    def park(self, outcome: EngineOutcome) -> tuple[State, None, Outcome]:
        """Show the work on the pull request, then park saying why and when to go on."""
        work = self.stage_work
        reason = f"engine {self.spec.engine}: {outcome.reason}"
        if self.files:
            work.handlers.publish(self.state, f"Work in progress: {reason}")
        wait = RESUME_AFTER_SECONDS.get(outcome.kind)
        retry_at = None if wait is None else format_ts(work.clock.now() + timedelta(seconds=wait))
        deferral = Deferral(reason=reason, kind=PARK_AS[outcome.kind], retry_at=retry_at)
        return self.state, None, Deferred(deferral)


_CALLS_LOCK = threading.Lock()


class CloneTools:
    """SOMAS's read tools and `run_tests` over an engine's clone, for the MCP server.

    Reads are confined to the clone; `run_tests` snapshots the clone's files into a commit
    (a private index, no ref of the clone moves), fetches it into the repository and runs the
    suite on it in the validation sandbox, exactly as the validation stage will.
    """

    def __init__(self, scratch: Scratch, workspace: GitWorkspace, base_ref: str, config: Config):
        self.scratch = scratch
        self.workspace = workspace
        self.base_ref = base_ref
        self.config = config
        self.root = scratch.path.resolve()

    def list_files(self, prefix: str) -> str:
        """Files under `prefix`: tracked and new, not ignored."""
        listing = self.scratch.git(
            "ls-files", "--cached", "--others", "--exclude-standard", "--", prefix or "."
        )
        return listing or f"no files under {prefix!r}"

    def read_file(self, path: str, start: int, end: int) -> str:
        """Lines `start`..`end` of a file inside the clone, numbered."""
        target = (self.root / path).resolve()
        if self.root not in target.parents or not target.is_file():
            raise ValueError(f"{path!r} is not a file of the repository")
        cap = self.config.tool_loop.read_max_lines
        first = max(1, start)
        last = min(max(first, end), first + cap - 1)
        lines = target.read_text(encoding="utf-8", errors="replace").splitlines()
        shown = lines[first - 1 : last]
        return "\n".join(f"{first + i}: {line}" for i, line in enumerate(shown)) or "(no lines)"

    def search(self, pattern: str, prefix: str) -> str:
        """`path:line:text` for lines matching `pattern` (extended regex) under `prefix`."""
        try:
            found = self.scratch.git(
                "grep", "-n", "-I", "-E", "--untracked", "-e", pattern, "--", prefix or "."
            )
        except SomasError:
            return "no matches"
        lines = found.splitlines()
        cap = self.config.tool_loop.search_max_matches
        more = f"\n[{len(lines) - cap} more matches]" if len(lines) > cap else ""
        return "\n".join(lines[:cap]) + more

    def run_tests(self) -> str:
        """The repository's suite on the clone's files, in the sandbox; the report as JSON."""
        commit = self.snapshot()
        self.workspace.git(
            "fetch", "--quiet", "--no-tags", str(self.scratch.git_dir),
            f"+{SNAPSHOT_REF}:{SNAPSHOT_REF}",
        )  # fmt: skip
        validation = run_suite(
            self.workspace,
            base_ref=self.base_ref,
            branch_ref=commit,
            settings=self.config.validation,
            branch_name="(the engine's files)",
        )
        return json.dumps(report_for_model(validation.artifact), indent=1)

    def snapshot(self) -> str:
        """A commit of the clone's files on its base (a private index; only SNAPSHOT_REF moves)."""
        with tempfile.TemporaryDirectory(prefix="somas-index-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            git = self.scratch.git
            git("read-tree", self.scratch.base_commit, env=index)
            git("add", "--all", env=index)
            git("reset", "--quiet", "--", REPLY_FILE, env=index)
            tree = git("write-tree", env=index)
            message = "somas: run_tests"
            base = self.scratch.base_commit
            commit = git("commit-tree", tree, "-p", base, "-m", message, env=index | SNAPSHOT_ENV)
            git("update-ref", SNAPSHOT_REF, commit, env=index)
        return commit


SNAPSHOT_REF = "refs/somas/engine-snapshot"


def _note(observations: list[Observation], transition: Transition | None) -> None:
    if transition is not None:
        observations.append(transition.observation())


def _failure(kind: str, message: str) -> Failure:
    return Failure({"kind": kind, "message": message}, [], [])


def _error_kind(outcome_kind: str) -> str:
    return {QUOTA: QUOTA, RATE_LIMITED: RATE_LIMITED}.get(outcome_kind, PERMANENT)


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def _as_crash(outcome: EngineOutcome, why: str) -> EngineOutcome:
    return replace(outcome, kind="crash", reason=why)
