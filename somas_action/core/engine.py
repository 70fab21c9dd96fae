"""The pure pipeline engine: state + command -> event drafts. No I/O, no clock of its own."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from somas_action.core import events as ev
from somas_action.core import names
from somas_action.core.domain import (
    ArtifactRecord,
    DeadLetter,
    ErrorRecord,
    EventDraft,
    GateResult,
    HumanGate,
    IssueSnapshot,
    JsonObject,
    Replay,
    State,
    StateEdit,
    TraceEntry,
)
from somas_action.core.error_kinds import ABANDONED
from somas_action.core.errors import CommandRefused, StateError
from somas_action.core.events import EventType
from somas_action.core.projection import parse_ts
from somas_action.core.settings import Config, StageConfig


@dataclass(frozen=True)
class Context:
    """Who issues a command, when, and its idempotency key."""

    actor: str
    ts: str
    command_id: str


class Batch:
    """Builds a command's drafts, tracking the current stage for `from_stage`/`to_stage`."""

    def __init__(self, project_id: str, current_stage: str | None, ctx: Context) -> None:
        self.project_id = project_id
        self.current = current_stage
        self.ctx = ctx
        self.drafts: list[EventDraft] = []

    def add(
        self,
        event_type: EventType,
        *,
        stage: str | None,
        status: str,
        attempt: int | None = None,
        to_stage: str | None = None,
        data: JsonObject | None = None,
    ) -> None:
        """Add one event; `to_stage` defaults to the stage the project is on."""
        target = to_stage if to_stage is not None else self.current
        payload = dict(data or {})
        if not self.drafts and not self.ctx.command_id.startswith("advance:"):
            payload["command_id"] = self.ctx.command_id
        self.drafts.append(
            ev.draft(
                project_id=self.project_id,
                command_id=self.ctx.command_id,
                index=len(self.drafts),
                ts=self.ctx.ts,
                event_type=event_type,
                actor=self.ctx.actor,
                stage=stage,
                from_stage=self.current,
                to_stage=target,
                status=status,
                attempt=attempt,
                data=payload,
            )
        )
        self.current = target

    def next_seq(self, state: State) -> int:
        """The seq the next draft of this batch will get when appended after `state`."""
        return state["metrics"]["events"] + len(self.drafts) + 1


# -- what to do next -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunStage:
    """Run attempt `attempt` of `stage`."""

    stage: StageConfig
    attempt: int


@dataclass(frozen=True)
class Stop:
    """Nothing to run; `reason` says why, `code` is the CLI exit code it maps to."""

    reason: str
    code: int = 0


def next_step(state: State, config: Config) -> RunStage | Stop:
    """What `advance` should do for a project in `state`."""
    pid, status = state["project_id"], state["status"]
    if status == names.COMPLETED:
        return Stop(f"{pid} is completed; nothing to advance")
    if status == names.CANCELLED:
        return Stop(f"{pid} is cancelled; nothing to advance", code=1)
    if status == names.PAUSED:
        return Stop(f"{pid} is paused; unpause it to continue", code=1)
    if status == names.WAITING:
        human_gate = state["human_gate"]
        gate = human_gate["stage"] if human_gate else state["current_stage"]
        return Stop(f"{pid} is waiting at the {gate} human gate; run `somas approve {pid}`")
    if status == names.FAILED:
        return Stop(
            f"{pid} failed at {state['current_stage']}; see dead_letters.json, "
            "then restart the stage",
            code=1,
        )
    if not config.enabled:
        return Stop(
            f"{config.path}: pipeline.enabled is false (emergency stop); no stage advances. "
            "Set it to true to resume.",
            code=1,
        )
    stage = config.stage(state["current_stage"])
    record = state["stages"][stage.name]
    return RunStage(stage=stage, attempt=record["attempts"] + 1)


# -- commands ------------------------------------------------------------------------------


def create_project(
    project_id: str, issue: IssueSnapshot, config: Config, ctx: Context
) -> list[EventDraft]:
    """Events that open a project for an issue."""
    batch = Batch(project_id, None, ctx)
    first = config.stage_names[0]
    batch.add(
        EventType.PROJECT_CREATED,
        stage=None,
        status=names.PENDING,
        to_stage=first,
        data={"issue": issue, "pipeline": list(config.stage_names)},
    )
    return batch.drafts


def start_attempt(
    state: State, stage: StageConfig, attempt: int, model: dict[str, str] | None, ctx: Context
) -> list[EventDraft]:
    """`stage_started` and `agent_invoked` for one attempt."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(
        EventType.STAGE_STARTED,
        stage=stage.name,
        status=names.STAGE_IN_PROGRESS,
        attempt=attempt,
        to_stage=stage.name,
        data={"max_attempts": stage.max_retries, "timeout_minutes": stage.timeout_minutes},
    )
    batch.add(
        EventType.AGENT_INVOKED,
        stage=stage.name,
        status=names.STAGE_IN_PROGRESS,
        attempt=attempt,
        data={"agent": stage.agent, "model": model},
    )
    return batch.drafts


def add_reply_accepted(
    batch: Batch,
    stage: str,
    attempt: int,
    output_digest: str,
    artifacts: list[ArtifactRecord],
    gate_results: list[GateResult],
    gates_status: str,
) -> None:
    """The accepted reply, the artifacts it wrote and its gates' results, in that order."""
    batch.add(
        EventType.AGENT_OUTPUT_ACCEPTED,
        stage=stage,
        status="accepted",
        attempt=attempt,
        data={"output_sha256": output_digest},
    )
    batch.add(
        EventType.ARTIFACTS_WRITTEN,
        stage=stage,
        status="written",
        attempt=attempt,
        data={"artifacts": artifacts},
    )
    batch.add(
        EventType.QUALITY_GATES_EVALUATED,
        stage=stage,
        status=gates_status,
        attempt=attempt,
        data={"results": gate_results},
    )


def finish_attempt(
    state: State,
    config: Config,
    stage: StageConfig,
    attempt: int,
    *,
    output_digest: str,
    artifacts: list[ArtifactRecord],
    gate_results: list[GateResult],
    ctx: Context,
) -> list[EventDraft]:
    """Events for an attempt whose output was valid and whose gates all passed."""
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    add_reply_accepted(batch, stage.name, attempt, output_digest, artifacts, gate_results, "passed")
    if stage.human_gate:
        batch.add(
            EventType.HUMAN_GATE_OPENED, stage=stage.name, status=names.WAITING, attempt=attempt
        )
    else:
        _complete_stage(batch, state, config, stage, attempt)
    return batch.drafts


def _complete_stage(
    batch: Batch, state: State, config: Config, stage: StageConfig, attempt: int | None
) -> None:
    pipeline = state["pipeline"]
    position = pipeline.index(stage.name)
    following = pipeline[position + 1] if position + 1 < len(pipeline) else None
    batch.add(
        EventType.STAGE_COMPLETED,
        stage=stage.name,
        status=names.STAGE_COMPLETED,
        attempt=attempt,
        to_stage=following or stage.name,
        data=_clock_step(state["stages"][stage.name]["started_at"], batch.ctx.ts),
    )
    checkpoint_id = names.checkpoint_id(batch.next_seq(state), stage.name)
    batch.add(
        EventType.CHECKPOINT_CREATED,
        stage=stage.name,
        status="saved",
        attempt=attempt,
        data={"checkpoint_id": checkpoint_id, "resume_stage": following or stage.name},
    )
    if following is None:
        batch.add(EventType.PROJECT_COMPLETED, stage=None, status=names.COMPLETED)


def _clock_step(started_at: str | None, now: str) -> JsonObject:
    """Flag a clock that stepped back since the stage started (its duration is clamped to 0)."""
    if started_at is None or now >= started_at:
        return {}
    back = (parse_ts(started_at) - parse_ts(now)).total_seconds()
    return {"clock_stepped_back_seconds": round(back, 3)}


def fail_attempt(
    state: State,
    stage: StageConfig,
    attempt: int,
    error: ErrorRecord,
    replay: Replay,
    ctx: Context,
    artifacts: list[ArtifactRecord] | None = None,
    gate_results: list[GateResult] | None = None,
    *,
    final: bool = False,
    trace: list[TraceEntry] | None = None,
) -> list[EventDraft]:
    """An attempt failed: record it, and when attempts are used up fail the stage and project.

    Artifacts and gate results of the failed attempt (e.g. failing test results) are recorded
    first, so the runbook's diagnosis commands see them. `replay` holds what a dead letter
    needs to re-run the operation (agent, model, exact inputs). `final`: the error's kind says
    another attempt cannot help (auth, budget, permanent), so the stage fails now. `trace` is
    what happened to the stage, kept in the dead letter.
    """
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    if artifacts:
        batch.add(
            EventType.ARTIFACTS_WRITTEN,
            stage=stage.name,
            status="written",
            attempt=attempt,
            data={"artifacts": artifacts},
        )
    if gate_results:
        batch.add(
            EventType.QUALITY_GATES_EVALUATED,
            stage=stage.name,
            status=names.FAILED,
            attempt=attempt,
            data={"results": gate_results},
        )
    exhausted = final or attempt >= stage.max_retries
    batch.add(
        EventType.STAGE_ATTEMPT_FAILED,
        stage=stage.name,
        status=names.FAILED,
        attempt=attempt,
        data={"error": error, "attempts_left": 0 if final else max(stage.max_retries - attempt, 0)},
    )
    if exhausted:
        _fail_stage(batch, state, stage, attempt, error, replay, ctx.ts, trace)
    return batch.drafts


def _fail_stage(
    batch: Batch,
    state: State,
    stage: StageConfig,
    attempt: int,
    error: ErrorRecord,
    replay: Replay,
    ts: str,
    trace: list[TraceEntry] | None,
) -> None:
    """The stage used its last attempt: it and the project fail, with one dead letter."""
    batch.add(
        EventType.STAGE_FAILED,
        stage=stage.name,
        status=names.FAILED,
        attempt=attempt,
        data={"error": error, "attempts": attempt},
    )
    letter = dead_letter(state, stage, attempt, error, replay, ts, trace)
    batch.add(
        EventType.DEAD_LETTER_RECORDED,
        stage=stage.name,
        status=names.FAILED,
        attempt=attempt,
        data={"dead_letter": letter},
    )


def dead_letter(
    state: State,
    stage: StageConfig,
    attempt: int,
    error: ErrorRecord,
    replay: Replay,
    ts: str,
    trace: list[TraceEntry] | None = None,
) -> DeadLetter:
    """One dead letter per failed operation; its id is stable so it is never duplicated."""
    key = f"{state['project_id']}\n{stage.name}\n{state['stages'][stage.name]['started_at']}"
    letter: DeadLetter = {
        "id": "dl-" + hashlib.sha256(key.encode()).hexdigest()[:12],
        "created_at": ts,
        "project_id": state["project_id"],
        "operation": "stage_attempt",
        "stage": stage.name,
        "agent": stage.agent,
        "attempt": attempt,
        "max_attempts": stage.max_retries,
        "error": error,
        "replay": replay,
    }
    if trace is not None:
        letter["trace"] = trace
    return letter


def open_attempt(state: State) -> tuple[str, int] | None:
    """(stage, attempt) of an attempt the state shows started and never finished, or None."""
    stage = state["current_stage"]
    record = state["stages"][stage]
    if record["status"] != names.STAGE_IN_PROGRESS or not record["attempts"]:
        return None
    return stage, record["attempts"]


def abandon_attempt(
    state: State,
    stage: StageConfig,
    reason: str,
    ctx: Context,
    *,
    counted: bool,
    replay: Replay | None = None,
    output_digest: str | None = None,
) -> list[EventDraft]:
    """Record an attempt that will never report.

    `counted=False`: a control (pause, cancel, stop-all, a tripped breaker) stopped the run at
    a safe point; the attempt does not count and the next run repeats it (`output_digest` names
    a reply that arrived and was kept as an artifact, so the paid-for work is not lost).
    `counted=True`: the run died during it (found by the next run); it counts like a failed
    attempt, so a stage whose attempts keep killing their run still stops at max_retries (the
    last one fails the stage with a dead letter, which needs `replay`).
    """
    opened = open_attempt(state)
    if opened is None or opened[0] != stage.name:
        return []
    attempt = opened[1]
    error: ErrorRecord = {"kind": ABANDONED, "message": reason}
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    data: JsonObject = {"reason": reason, "counted": counted, "error": error}
    if output_digest:
        data["output_sha256"] = output_digest
    batch.add(
        EventType.STAGE_ATTEMPT_ABANDONED,
        stage=stage.name,
        status="abandoned",
        attempt=attempt,
        data=data,
    )
    if counted and attempt >= stage.max_retries and replay is not None:
        _fail_stage(batch, state, stage, attempt, error, replay, ctx.ts, None)
    return batch.drafts


def cancel_attempt(state: State, reason: str, ctx: Context) -> list[EventDraft]:
    """A run stopped mid-attempt (cancelled): record it so the next run repeats the attempt."""
    stage = state["current_stage"]
    record = state["stages"][stage]
    if record["status"] != names.STAGE_IN_PROGRESS:
        return []
    batch = Batch(state["project_id"], stage, ctx)
    batch.add(
        EventType.RUN_CANCELLED,
        stage=stage,
        status="cancelled",
        attempt=record["attempts"],
        data={"reason": reason},
    )
    return batch.drafts


def approve(state: State, config: Config, ctx: Context) -> list[EventDraft]:
    """Approve the open human gate; the gated stage completes and the pipeline moves on."""
    gate = _open_gate(state, "approve")
    stage = config.stage(gate["stage"])
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(EventType.HUMAN_GATE_APPROVED, stage=stage.name, status=names.GATE_APPROVED)
    _complete_stage(batch, state, config, stage, state["stages"][stage.name]["attempts"])
    return batch.drafts


def reject(state: State, config: Config, reason: str, ctx: Context) -> list[EventDraft]:
    """Reject the open human gate; the project goes back to the stage's `on_reject` stage."""
    gate = _open_gate(state, "reject")
    stage = config.stage(gate["stage"])
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(
        EventType.HUMAN_GATE_REJECTED,
        stage=stage.name,
        status=names.GATE_REJECTED,
        to_stage=stage.on_reject,
        data={"reason": reason},
    )
    return batch.drafts


def _open_gate(state: State, verb: str) -> HumanGate:
    gate = state["human_gate"]
    if state["status"] != names.WAITING or not gate or gate["status"] != names.GATE_WAITING:
        raise CommandRefused(
            f"{state['project_id']}: nothing to {verb}: the project is {state['status']} at "
            f"{state['current_stage']}, not waiting at a human gate"
        )
    return gate


def record_state_edit(state: State, edit: StateEdit, ctx: Context) -> list[EventDraft]:
    """Turn a hand edit of state.json into an audited event (invalid values are refused)."""
    changes = edit["changes"]
    where = f".somas/projects/{state['project_id']}/state.json"
    if "status" in changes and changes["status"] not in names.PROJECT_STATUSES:
        raise StateError(
            f"{where}: status: {changes['status']!r} is not one of "
            f"{', '.join(names.PROJECT_STATUSES)}; fix it or run `somas reconstruct`"
        )
    if "current_stage" in changes and changes["current_stage"] not in state["pipeline"]:
        raise StateError(
            f"{where}: current_stage: unknown stage {changes['current_stage']!r}; valid stages: "
            f"{', '.join(state['pipeline'])}"
        )
    for stage, fields in changes.get("stages", {}).items():
        if fields.get("status") not in names.STAGE_STATUSES:
            raise StateError(
                f"{where}: stages.{stage}.status: {fields.get('status')!r} is not one of "
                f"{', '.join(names.STAGE_STATUSES)}"
            )
    batch = Batch(state["project_id"], state["current_stage"], ctx)
    batch.add(
        EventType.STATE_EDIT_RECORDED,
        stage=changes.get("current_stage", state["current_stage"]),
        status=changes.get("status", state["status"]),
        to_stage=changes.get("current_stage"),
        data=dict(edit),
    )
    return batch.drafts


def output_digest(output: Any) -> str:
    """A stable digest of an agent reply, recorded instead of the whole reply."""
    return hashlib.sha256(json.dumps(output, sort_keys=True).encode()).hexdigest()
