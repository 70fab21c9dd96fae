"""The runner's resilience steps: call options, preflight, parking, observations, traces.

Kept out of `runner.py` so the runner shows the pipeline's flow and this module the policy of
what happens when a provider is down, the run is out of time, or the budget is spent.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from somas_action.core import events as ev
from somas_action.core import names, resilience_events
from somas_action.core.budget import budget_for
from somas_action.core.clock import Clock, format_ts
from somas_action.core.domain import Event, State, TraceEntry
from somas_action.core.engine import Stop
from somas_action.core.error_kinds import CIRCUIT_OPEN, RUN_DEADLINE, policy_for
from somas_action.core.errors import ClassifiedError
from somas_action.core.events import EventType
from somas_action.core.ports import (
    AgentProvider,
    CallOptions,
    Deferral,
    Observation,
    SupportsAvailability,
)
from somas_action.core.settings import AgentConfig, Config
from somas_action.pipeline.breaker_mirror import sync_changes
from somas_action.pipeline.recorder import Recorder
from somas_action.state.store import ProjectStore

TRACE_LIMIT = 50
# Events that begin a fresh run of a stage: a trace looks no further back.
_TRACE_BOUNDARIES = (
    EventType.PROJECT_CREATED,
    EventType.STAGE_COMPLETED,
    EventType.HUMAN_GATE_REJECTED,
    EventType.STATE_EDIT_RECORDED,
)


def call_options(
    config: Config,
    state: State,
    agent: AgentConfig,
    deadline: float | None,
    observations: list[Observation],
) -> CallOptions:
    """What a live provider may do for one agent call."""
    return CallOptions(
        fallback=agent.fallback,
        temperature=agent.temperature,
        max_output_tokens=agent.max_output_tokens,
        budget=budget_for(config.agent_provider.budget, state["metrics"].get("usage")),
        deadline=deadline,
        observe=observations.append,
    )


def affordable(clock: Clock, deadline: float | None, seconds: float) -> bool:
    """Whether waiting `seconds` still ends before the run's deadline."""
    return deadline is None or clock.monotonic() + seconds <= deadline


def preflight(
    clock: Clock, provider: AgentProvider, agent: AgentConfig, deadline: float | None
) -> Deferral | None:
    """Why the next attempt cannot start now (run out of time, every provider refused), or None."""
    if not affordable(clock, deadline, 0.0):
        return Deferral(
            reason="the run's time budget is used up; the next run continues",
            kind=RUN_DEADLINE,
            retry_at=format_ts(clock.now()),
        )
    if isinstance(provider, SupportsAvailability):
        return provider.unavailable(agent.models)
    return None


def deferral_for(exc: ClassifiedError, clock: Clock) -> Deferral | None:
    """The deferral an agent call's error asks for (its policy says park), else None."""
    if not policy_for(exc.kind).defer:
        return None
    retry_at = None
    if exc.retry_after is not None:
        retry_at = format_ts(clock.now() + timedelta(seconds=exc.retry_after))
    return Deferral(reason=str(exc), kind=exc.kind, retry_at=retry_at, services=exc.services)


def park(
    recorder: Recorder,
    store: ProjectStore,
    state: State,
    stage: str,
    deferral: Deferral,
    deferred_attempt: int | None,
    actor: str,
) -> State:
    """Checkpoint and park the project; parking again for the same reason records nothing."""
    parked = state["recovery_info"].get("parked")
    if (
        state["status"] == names.PARKED
        and deferred_attempt is None
        and parked
        and (parked["kind"], parked["retry_at"], parked["services"])
        == (deferral.kind, deferral.retry_at, list(deferral.services))
    ):
        return state
    ctx = recorder.step_context(actor, state)
    drafts = resilience_events.park_drafts(state, stage, deferral, deferred_attempt, ctx)
    return recorder.commit(store, state, drafts)


def unpark(recorder: Recorder, store: ProjectStore, state: State, actor: str) -> State:
    """Record that a parked project continues."""
    ctx = recorder.step_context(actor, state)
    return recorder.commit(store, state, resilience_events.unpark_drafts(state, ctx))


def parked_stop(state: State) -> Stop:
    """What `advance` says when it leaves a project parked (not an error: nothing is lost)."""
    pid = state["project_id"]
    parked = state["recovery_info"].get("parked")
    when = parked["retry_at"] if parked else None
    if when:
        then = f"`somas advance {pid}` continues it after {when}"
    elif parked and parked["kind"] == CIRCUIT_OPEN:  # tripped by hand: no time of its own
        services = " ".join(parked["services"] or ["SERVICE"])
        then = f"once healthy, `somas breaker reset {services}`, then `somas advance {pid}`"
    else:
        then = f"`somas advance {pid}` continues it"
    reason = parked["reason"] if parked else None
    return Stop(f"{pid} is parked at {state['current_stage']}: {reason}; {then}")


def sync_breakers(
    recorder: Recorder, repo: Path, store: ProjectStore, state: State, actor: str
) -> State:
    """Mirror breaker changes made by other runs into this project before it advances."""
    changes = sync_changes(repo, state)
    if not changes:
        return state
    ctx = recorder.step_context(actor, state)
    return recorder.commit(store, state, resilience_events.breaker_drafts(state, changes, ctx))


def record_observations(
    recorder: Recorder,
    store: ProjectStore,
    state: State,
    observations: list[Observation],
    stage: str,
    attempt: int,
    actor: str,
) -> State:
    """Commit what the provider observed during a call, then forget it."""
    if not observations:
        return state
    ctx = recorder.step_context(actor, state)
    drafts = resilience_events.observation_drafts(state, list(observations), ctx, stage, attempt)
    observations.clear()
    return recorder.commit(store, state, drafts)


def _detail(event: Event) -> str:
    data = event["data"]
    if "error" in data:
        return f"{data['error']['kind']}: {data['error']['message']}"
    if event["event_type"] == EventType.PROVIDER_FALLBACK:
        return f"{data['from']} -> {data['to']} ({data['because']})"
    if "breaker" in data:
        return f"{data['service']} {data['breaker']['state']}: {data['breaker']['reason']}"
    if event["event_type"] == EventType.AGENT_USAGE_RECORDED:
        return f"{data['provider']}/{data['model']} {data['input_tokens']}+{data['output_tokens']}"
    if event["event_type"] == EventType.PROJECT_PARKED:
        return str(data["reason"])
    return ""


def trace_for(store: ProjectStore, stage: str) -> list[TraceEntry]:
    """What happened to the stage in its current run, oldest first, for its dead letter."""
    found: list[TraceEntry] = []
    for event in reversed(store.read_events()):
        if event["event_type"] in _TRACE_BOUNDARIES:
            break
        if event["stage"] == stage or event["event_type"] in ev.CIRCUIT_BREAKER_EVENT_TYPES:
            entry: TraceEntry = {
                "seq": event["seq"],
                "ts": event["ts"],
                "event_type": event["event_type"],
                "attempt": event["attempt"],
                "status": event["status"],
            }
            detail = _detail(event)
            if detail:
                entry["detail"] = detail[:300]
            found.append(entry)
    return list(reversed(found))[-TRACE_LIMIT:]
