"""The runner's resilience steps: call options, preflight, parking, observations, traces.

Kept out of `runner.py` so the runner shows the pipeline's flow and this module the policy of
what happens when a provider is down, the run is out of time, or the budget is spent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from somas_action.config.loader import AgentConfig, Config
from somas_action.core import events as ev
from somas_action.core import names, resilience_events
from somas_action.core.clock import Clock, format_ts
from somas_action.core.engine import Stop
from somas_action.core.error_kinds import CIRCUIT_OPEN, RUN_DEADLINE, policy_for
from somas_action.core.errors import ProviderError
from somas_action.core.ports import CallOptions, Deferral, Observation, SupportsAvailability
from somas_action.core.projection import State
from somas_action.pipeline.breaker_mirror import sync_changes
from somas_action.state.store import ProjectStore

if TYPE_CHECKING:
    from somas_action.pipeline.runner import Runner

TRACE_LIMIT = 50
# Events that begin a fresh run of a stage: a trace looks no further back.
_TRACE_BOUNDARIES = (
    ev.PROJECT_CREATED,
    ev.STAGE_COMPLETED,
    ev.HUMAN_GATE_REJECTED,
    ev.STATE_EDIT_RECORDED,
)


def models_of(agent: AgentConfig) -> list[dict[str, Any]]:
    """An agent's model chain: `model`, then each `fallback`, in order."""
    return [m for m in (agent.raw.get("model"), *agent.raw.get("fallback", [])) if m]


def budget_for(config: Config, state: State) -> dict[str, Any] | None:
    """The project's budget and what it has spent so far (None when no budget is set)."""
    budget = config.raw["agent_provider"]["budget"]
    if budget["max_cost_usd"] is None and budget["max_tokens"] is None:
        return None
    usage = state["metrics"].get("usage") or {}
    return {
        **budget,
        "spent_cost_usd": usage.get("cost_usd", 0.0),
        "spent_tokens": usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
    }


def call_options(
    runner: Runner,
    state: State,
    agent: AgentConfig,
    deadline: float | None,
    observations: list[Observation],
) -> CallOptions:
    """What a live provider may do for one agent call."""
    return CallOptions(
        fallback=tuple(agent.raw.get("fallback", [])),
        temperature=agent.raw.get("temperature"),
        max_output_tokens=agent.raw.get("max_output_tokens"),
        budget=budget_for(runner.s.config, state),
        deadline=deadline,
        observe=observations.append,
    )


def affordable(clock: Clock, deadline: float | None, seconds: float) -> bool:
    """Whether waiting `seconds` still ends before the run's deadline."""
    return deadline is None or clock.monotonic() + seconds <= deadline


def preflight(runner: Runner, agent: AgentConfig, deadline: float | None) -> Deferral | None:
    """Why the next attempt cannot start now (run out of time, every provider refused), or None."""
    clock = runner.s.clock
    if not affordable(clock, deadline, 0.0):
        return Deferral(
            reason="the run's time budget is used up; the next run continues",
            kind=RUN_DEADLINE,
            retry_at=format_ts(clock.now()),
        )
    provider = runner.s.provider
    if isinstance(provider, SupportsAvailability):
        return provider.unavailable(models_of(agent))
    return None


def deferral_for(exc: ProviderError, clock: Clock) -> Deferral | None:
    """The deferral an agent call's error asks for (its policy says park), else None."""
    if not policy_for(exc.kind).defer:
        return None
    retry_at = None
    if exc.retry_after is not None:
        retry_at = format_ts(clock.now() + timedelta(seconds=exc.retry_after))
    services = tuple(s for s in (exc.service or "").split(",") if s)
    return Deferral(reason=str(exc), kind=exc.kind, retry_at=retry_at, services=services)


def park(
    runner: Runner,
    store: ProjectStore,
    state: State,
    stage: str,
    deferral: Deferral,
    deferred_attempt: int | None,
    actor: str,
) -> State:
    """Checkpoint and park the project; parking again for the same reason records nothing."""
    parked = state["recovery_info"].get("parked") or {}
    if (
        state["status"] == names.PARKED
        and deferred_attempt is None
        and (parked.get("kind"), parked.get("retry_at"), parked.get("services"))
        == (deferral.kind, deferral.retry_at, list(deferral.services))
    ):
        return state
    ctx = runner.context(actor, f"advance:{state['metrics']['events']}")
    return runner.commit(
        store, state, resilience_events.park_drafts(state, stage, deferral, deferred_attempt, ctx)
    )


def unpark(runner: Runner, store: ProjectStore, state: State, actor: str) -> State:
    """Record that a parked project continues."""
    ctx = runner.context(actor, f"advance:{state['metrics']['events']}")
    return runner.commit(store, state, resilience_events.unpark_drafts(state, ctx))


def parked_stop(state: State) -> Stop:
    """What `advance` says when it leaves a project parked (not an error: nothing is lost)."""
    pid = state["project_id"]
    parked = state["recovery_info"].get("parked") or {}
    when = parked.get("retry_at")
    if when:
        then = f"`somas advance {pid}` continues it after {when}"
    elif parked.get("kind") == CIRCUIT_OPEN:  # a breaker tripped by hand: no time of its own
        services = " ".join(parked.get("services") or ["SERVICE"])
        then = f"once healthy, `somas breaker reset {services}`, then `somas advance {pid}`"
    else:
        then = f"`somas advance {pid}` continues it"
    return Stop(f"{pid} is parked at {state['current_stage']}: {parked.get('reason')}; {then}")


def sync_breakers(runner: Runner, store: ProjectStore, state: State, actor: str) -> State:
    """Mirror breaker changes made by other runs into this project before it advances."""
    changes = sync_changes(runner.s.repo, state)
    if not changes:
        return state
    ctx = runner.context(actor, f"advance:{state['metrics']['events']}")
    return runner.commit(store, state, resilience_events.breaker_drafts(state, changes, ctx))


def record_observations(
    runner: Runner,
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
    ctx = runner.context(actor, f"advance:{state['metrics']['events']}")
    drafts = resilience_events.observation_drafts(state, list(observations), ctx, stage, attempt)
    observations.clear()
    return runner.commit(store, state, drafts)


def _detail(event: dict[str, Any]) -> str:
    data = event["data"]
    if "error" in data:
        return f"{data['error']['kind']}: {data['error']['message']}"
    if event["event_type"] == ev.PROVIDER_FALLBACK:
        return f"{data['from']} -> {data['to']} ({data['because']})"
    if "breaker" in data:
        return f"{data['service']} {data['breaker']['state']}: {data['breaker']['reason']}"
    if event["event_type"] == ev.AGENT_USAGE_RECORDED:
        return f"{data['provider']}/{data['model']} {data['input_tokens']}+{data['output_tokens']}"
    if event["event_type"] == ev.PROJECT_PARKED:
        return str(data["reason"])
    return ""


def trace_for(store: ProjectStore, stage: str) -> list[dict[str, Any]]:
    """What happened to the stage in its current run, oldest first, for its dead letter."""
    found: list[dict[str, Any]] = []
    for event in reversed(store.read_events()):
        if event["event_type"] in _TRACE_BOUNDARIES:
            break
        if event["stage"] == stage or event["event_type"] in ev.CIRCUIT_BREAKER_EVENT_TYPES:
            entry = {
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
