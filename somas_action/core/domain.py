"""The shapes of the data the log and its projection hold: events and `state.json`.

These are TypedDicts, not classes, because the files are JSON that operators read and edit with
`jq`: a value here is exactly what is written. `schemas/event.schema.json` and
`schemas/state.schema.json` describe the same shapes for files; a test keeps the two in step.
"""

# No `from __future__ import annotations` here: TypedDict reads `NotRequired` only from
# evaluated annotations, and the required keys are part of what the tests compare.
from typing import Any, NotRequired, TypedDict

# A JSON object as parsed, with no static shape: agent replies, JSON Schemas, webhook payloads,
# event payloads. Each is checked against a JSON Schema where it enters, not by mypy.
JsonObject = dict[str, Any]


# -- events -----------------------------------------------------------------------------------


class EventDraft(TypedDict):
    """An event before the log appends it (no `seq`, `prev_hash`, `hash` yet).

    `data` is the event type's own payload (documented per type in docs/configuration.md and
    checked by `schemas/event.schema.json`).
    """

    v: int
    id: str
    ts: str
    project_id: str
    event_type: str
    stage: str | None
    from_stage: str | None
    to_stage: str | None
    status: str
    attempt: int | None
    actor: str
    data: dict[str, Any]


class Event(EventDraft):
    """An event as the log holds it: numbered and hash-chained.

    `batch_remaining` is on every event of a batch but the last: how many events of the same
    batch follow it (a batch cut short by a crash is dropped whole).
    """

    seq: int
    batch_remaining: NotRequired[int]
    prev_hash: str
    hash: str


# -- parts of state.json ----------------------------------------------------------------------


class ErrorRecord(TypedDict):
    """A classified error as events, stage records and dead letters carry it."""

    kind: str
    message: str
    service: NotRequired[str]
    status: NotRequired[int]
    retry_after_seconds: NotRequired[float]


class GateResult(TypedDict):
    """One evaluated quality gate."""

    name: str
    type: str
    passed: bool
    detail: str


class StageRecord(TypedDict):
    """`state.json` `.stages.<stage>`."""

    status: str
    attempts: int
    agent: str | None
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    artifacts: list[str]
    quality_gates: list[GateResult]
    failures: int
    last_error: ErrorRecord | None


class HumanGate(TypedDict):
    """`.human_gate`: the stage waiting for (or decided by) a person."""

    stage: str
    status: str
    opened_at: str
    decided_at: str | None
    decided_by: str | None
    reason: str | None


class Checkpoint(TypedDict):
    """One entry of `.recovery_info.checkpoints`."""

    id: str
    stage: str
    seq: int
    created_at: str
    resume_stage: str


class LastFailure(TypedDict):
    """`.recovery_info.last_failure`."""

    stage: str
    attempt: int | None
    error: ErrorRecord
    at: str


class Parked(TypedDict):
    """`.recovery_info.parked`: why the system deferred the work, and until when."""

    stage: str
    since: str
    reason: str
    kind: str
    services: list[str]
    retry_at: str | None


class RecoveryInfo(TypedDict):
    """`.recovery_info` (the runbook's `jq '.recovery_info'`)."""

    last_successful_checkpoint: str | None
    checkpoints: list[Checkpoint]
    resume_stage: str
    can_auto_recover: bool
    last_failure: LastFailure | None
    parked: NotRequired[Parked | None]


class BreakerView(TypedDict):
    """A circuit breaker as mirrored into `.circuit_breakers.<service>`."""

    state: str
    since: str | None
    retry_at: str | None
    reason: str | None
    changed_by: str | None


class Pause(TypedDict):
    """`.pause`: who paused the project, why, and what it was doing."""

    previous_status: str
    reason: str | None
    by: str
    at: str


class Incident(TypedDict):
    """`.incident`: the runbook's post-incident notes."""

    status: str
    opened_at: str
    opened_by: str
    notes: int
    resolution: str | None
    resolved_at: str | None


class UsageTotals(TypedDict):
    """Calls, tokens and cost of agent calls."""

    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class Usage(UsageTotals):
    """`.metrics.usage`: totals, by stage and by `provider/model`."""

    by_stage: dict[str, UsageTotals]
    by_model: dict[str, UsageTotals]


class Metrics(TypedDict):
    """`.metrics`: counters kept by the projection."""

    events: int
    attempts: int
    failed_attempts: int
    agent_calls: int
    http_calls: NotRequired[int]
    provider_errors: NotRequired[int]
    provider_fallbacks: NotRequired[int]
    invalid_outputs: NotRequired[int]
    debugger_runs: NotRequired[int]
    debugger_fixes: NotRequired[int]
    # Tool loops (docs/agents.md): model turns and tool calls recorded.
    agent_turns: NotRequired[int]
    tool_calls: NotRequired[int]
    # Engine runs (docs/engines.md) whose usage was counted.
    engine_runs: NotRequired[int]
    # Reviews that sent the project back for changes.
    review_rounds: NotRequired[int]
    usage: NotRequired[Usage]


class ChangesRequested(TypedDict):
    """`.changes_requested`: a reviewer's request that sent the project back, until the
    reviewing stage approves (then None). `round` counts requests against `max_rounds`."""

    stage: str
    back_to: str
    round: int
    max_rounds: int
    summary: str
    comments: list[str]
    requested_at: str


class LastEvent(TypedDict):
    """`.last_event`: the log's tail this state was folded up to.

    `log_bytes` is the log's length up to and including that event's line and `log_crc32` a
    CRC-32 of those bytes (8 hex digits): every command checks them on load, so an edited,
    deleted or inserted line anywhere before is noticed without reading the log as JSON. A
    state.json written before they existed has neither.
    """

    seq: int
    id: str
    hash: str
    log_bytes: NotRequired[int]
    log_crc32: NotRequired[str]


class Notice(TypedDict):
    """A comment the issue is owed for one event (`notification_owed`; `.outbox` holds them).

    It carries every fact its comment shows, so a later run can say it without the log.
    `kind` is the `monitoring.notifications.notify_on` name of what happened.
    """

    id: str
    kind: str
    event_id: str
    stage: str | None
    attempt: int | None
    next_stage: str | None
    error: ErrorRecord | None
    attempts: int | None
    dead_letter: str | None
    run_url: str | None


class State(TypedDict):
    """`state.json` without its `projection_sha256` digest: `fold(events)`."""

    schema_version: int
    project_id: str
    issue_number: int
    title: str
    status: str
    current_stage: str
    created_at: str
    updated_at: str
    completed_at: str | None
    pipeline: list[str]
    stages: dict[str, StageRecord]
    human_gate: HumanGate | None
    recovery_info: RecoveryInfo
    circuit_breakers: dict[str, BreakerView]
    dead_letter_count: int
    dead_letter_ids: list[str]
    pause: Pause | None
    incident: Incident | None
    applied_commands: dict[str, int]
    metrics: Metrics
    last_event: LastEvent
    # Comments owed to the issue and not yet said (absent until the first one is owed).
    outbox: NotRequired[list[Notice]]
    changes_requested: NotRequired[ChangesRequested | None]


class ArtifactRecord(TypedDict):
    """An artifact as `artifacts_written` records it: name, where, whose, size and digest.

    `path` (below `artifacts/`) and `owner` (`somas` or `agent`) are missing in logs written
    before artifacts had owners.
    """

    name: str
    path: NotRequired[str]
    owner: NotRequired[str]
    bytes: int
    sha256: str


class IssueSnapshot(TypedDict):
    """The issue a project was opened for, as `project_created` records it."""

    number: int
    title: str
    body: str
    url: str


class Replay(TypedDict):
    """What a dead letter needs to re-run its operation: the agent, model and exact inputs."""

    agent: str
    model: dict[str, str] | None
    inputs: dict[str, Any]


class TraceEntry(TypedDict):
    """One line of a dead letter's trace: what happened to the stage in its last run."""

    seq: int
    ts: str
    event_type: str
    attempt: int | None
    status: str
    detail: NotRequired[str]


class StateEdit(TypedDict):
    """A hand edit of `state.json`: the editable fields changed, and the ones ignored."""

    changes: dict[str, Any]
    ignored: list[str]
    detected_by: NotRequired[str]


class DeadLetter(TypedDict):
    """One entry of `dead_letters.json`: a failed operation and what replays it."""

    id: str
    created_at: str
    project_id: str
    operation: str
    stage: str
    agent: str
    attempt: int
    max_attempts: int
    error: ErrorRecord
    replay: Replay
    trace: NotRequired[list[TraceEntry]]
