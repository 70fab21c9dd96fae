"""The fault suite in its bounded form (`make faults` runs it at full size with figures).

Each experiment runs a handful of trials against this checkout and asserts that no invariant
broke (see tests/faults/harness.py for what is checked after every trial).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import experiments as ex
from tests.faults import harness
from tests.faults.harness import Somas, Trial

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ex.Lab]:
    yield ex.Lab(Somas(), tmp_path_factory.mktemp("faults"))


def _clean(trials: list[Trial]) -> None:
    broken = [f"{t.name}: {v}" for t in trials for v in t.violations]
    assert trials and not broken, "\n".join(broken[:20])


def test_sigkill_at_spread_durable_operations_and_a_random_moment(lab: ex.Lab) -> None:
    _clean(ex.run_kills(lab, limit=2, randoms=1))


def test_truncation_of_the_last_batch_and_in_the_middle(lab: ex.Lab) -> None:
    rng = random.Random(5)
    _clean(ex.torn_batch_trials(lab, every=53))
    _clean(ex.middle_cut_trials(lab, 8, rng))


def test_tampered_middle_lines_are_refused_by_every_writing_command(lab: ex.Lab) -> None:
    _clean(ex.tamper_trials(lab, 1, random.Random(3)))


def test_every_command_answers_every_corrupt_file_in_one_line(lab: ex.Lab) -> None:
    _clean(ex.corrupt_trials(lab))


def test_a_full_disk(lab: ex.Lab) -> None:
    why = ex.can_mount()
    if why:
        pytest.skip(f"ENOSPC trials need a small tmpfs (`make faults` runs more): {why}")
    _clean([harness.timed("enospc@64k", ex.enospc_trial, lab, 65_536)])


def test_sigint_then_sigterm_exits_130_and_a_clock_step_back_verifies(lab: ex.Lab) -> None:
    _clean(ex.signal_trials(lab, 1)[:1])
    _clean([harness.timed("clock-back", ex.clock_trial, lab, 0.0, -86_400.0)])


def test_the_suite_checks_what_it_claims(lab: ex.Lab, tmp_path: Path) -> None:
    """The invariants fire on a half batch, a lost event and a doubled commit."""
    from tests.faults.harness import PROJECT, Snapshot, batch_problems, invariants

    gate = lab.gate_repo()
    events = [{"seq": 1, "event_type": "stage_completed", "stage": "intake"}]
    assert batch_problems(events) == ["seq 1: stage_completed without checkpoint_created after it"]
    repo = harness.copy_repo(gate, tmp_path / "r")
    log = repo / ".somas" / "projects" / PROJECT / "transitions.jsonl"
    acknowledged = Snapshot.take(repo)
    log.write_bytes(log.read_bytes()[: -len(log.read_bytes().split(b"\n")[-2]) - 1])
    found = invariants(lab.somas, repo, acknowledged, complete=False)
    assert any("acknowledged events lost" in v for v in found)
