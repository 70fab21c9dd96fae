"""The pure engine: what `advance` does next, and what each command records."""

from __future__ import annotations

from pathlib import Path

import pytest

from somas_action.config.loader import load_config
from somas_action.core import engine, names
from somas_action.core.domain import ErrorRecord, Replay
from somas_action.core.engine import RunStage, Stop
from somas_action.core.projection import apply_all
from somas_action.core.settings import Config
from tests.scenarios import CTX, created_state, sealed


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(tmp_path)


def test_a_new_project_runs_its_first_stage(config: Config) -> None:
    state = created_state(config)
    step = engine.next_step(state, config)
    assert isinstance(step, RunStage) and (step.stage.name, step.attempt) == ("intake", 1)
    assert state["recovery_info"]["last_successful_checkpoint"] is None


def test_attempts_are_exhausted_at_max_retries(config: Config) -> None:
    state = created_state(config)
    stage = config.stage("intake")
    error: ErrorRecord = {"kind": "transient", "message": "x"}
    replay: Replay = {"agent": "intake-analyst", "model": None, "inputs": {"issue": {}}}
    seq = 2
    for attempt in (1, 2, 3):
        started = sealed(engine.start_attempt(state, stage, attempt, None, CTX), seq)
        state = apply_all(state, started)
        seq += len(started)
        failed = sealed(engine.fail_attempt(state, stage, attempt, error, replay, CTX), seq)
        seq += len(failed)
        state = apply_all(state, failed)
        kinds = [e["event_type"] for e in failed]
        if attempt < 3:
            assert kinds == ["stage_attempt_failed"]
            assert engine.next_step(state, config) == RunStage(stage, attempt + 1)
        else:
            assert kinds == ["stage_attempt_failed", "stage_failed", "dead_letter_recorded"]
    assert state["status"] == names.FAILED and state["dead_letter_count"] == 1
    step = engine.next_step(state, config)
    assert isinstance(step, Stop) and step.code == 1 and "failed at intake" in step.reason


def test_paused_cancelled_and_waiting_projects_do_not_advance(config: Config) -> None:
    state = created_state(config)
    for status, phrase in (
        ("paused", "unpause"),
        ("cancelled", "cancelled"),
        ("waiting", "somas approve"),
    ):
        step = engine.next_step({**state, "status": status}, config)
        assert isinstance(step, Stop) and phrase in step.reason


def test_from_and_to_stage_follow_the_current_stage(config: Config) -> None:
    state = created_state(config)
    stage = config.stage("intake")
    drafts = engine.finish_attempt(
        {**state, "current_stage": "intake"},
        config,
        stage,
        1,
        output_digest="d",
        artifacts=[],
        gate_results=[],
        ctx=CTX,
    )
    completed = next(d for d in drafts if d["event_type"] == "stage_completed")
    assert (completed["from_stage"], completed["to_stage"]) == ("intake", "specification")
    checkpoint = next(d for d in drafts if d["event_type"] == "checkpoint_created")
    assert checkpoint["data"]["resume_stage"] == "specification"
    assert len({d["id"] for d in drafts}) == len(drafts)


def test_every_event_type_is_projected_and_in_the_schema() -> None:
    from somas_action.config.schemas import load_schema
    from somas_action.core import events
    from somas_action.core.projection import HANDLED_EVENT_TYPES

    assert set(HANDLED_EVENT_TYPES) == set(events.EVENT_TYPES)
    assert load_schema("event")["properties"]["event_type"]["enum"] == list(events.EVENT_TYPES)
