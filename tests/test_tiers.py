"""The tier check itself: what a test does against how it is marked (tests/tiers.py)."""

from __future__ import annotations

import pytest

from tests import tiers
from tests.tiers import E2E, FAKES, SUBPROCESS, TierCheck


def check(*marks: str) -> TierCheck:
    return TierCheck("tests/test_x.py::test_y", frozenset(marks))


def popen(args: object) -> None:
    """What the interpreter reports when a child process is started."""
    tiers._audit("subprocess.Popen", (None, args, None, None))


def test_a_use_without_its_mark_is_named_once() -> None:
    unmarked = check()
    unmarked.see(FAKES, "starts the fake GitHub")
    unmarked.see(FAKES, "starts the fake GitHub")
    assert unmarked.problems == ["starts the fake GitHub: mark it @pytest.mark.fakes"]


def test_a_mark_without_its_use_is_named() -> None:
    idle = check(FAKES, SUBPROCESS)
    idle.see(FAKES, "starts the fake AI server")
    assert idle.problems == []
    assert idle.unused() == ["marked subprocess but nothing it did needed it: remove the mark"]


def test_a_test_that_did_not_pass_is_not_told_to_drop_its_marks() -> None:
    with tiers.watching(None):
        tiers.begin("tests/test_x.py::test_y", [FAKES, "parametrize"])
        assert tiers.end(check_unused=False) == []
        tiers.begin("tests/test_x.py::test_y", [FAKES, "parametrize"])
        assert tiers.end() == ["marked fakes but nothing it did needed it: remove the mark"]


def test_an_e2e_test_may_start_processes_but_must_say_it_starts_fakes() -> None:
    pipeline = check(E2E)
    pipeline.see(E2E, "runs pipeline stages (Runner.advance)")
    pipeline.see(SUBPROCESS, "starts a child process (python)")
    pipeline.see(FAKES, "starts the fake GitHub")
    assert pipeline.problems == ["starts the fake GitHub: mark it @pytest.mark.fakes"]
    assert pipeline.unused() == []


@pytest.mark.parametrize(
    ("args", "seen"),
    [
        (["git", "commit", "-q"], set()),
        (["/usr/bin/git", "status"], set()),
        (["/bin/sh", "-c", "jq . state.json"], {SUBPROCESS}),
        ([b"/usr/bin/python3", b"-m", b"pytest"], {SUBPROCESS}),
        ("somas", {SUBPROCESS}),
    ],
)
def test_child_processes_other_than_git_take_the_subprocess_mark(
    args: object, seen: set[str]
) -> None:
    watched = check()
    with tiers.watching(watched):
        popen(args)
    assert watched.used == seen


def test_outside_a_test_nothing_is_recorded() -> None:
    watched = check()
    with tiers.watching(watched), tiers.watching(None):
        popen(["python"])
        tiers.uses(FAKES, "starts the fake GitHub")
    assert watched.used == set()


def test_the_fast_tier_leaves_out_every_slow_marker() -> None:
    assert tiers.is_slow([pytest.mark.fakes.mark])
    assert tiers.is_slow([pytest.mark.parametrize.mark, pytest.mark.e2e.mark])
    assert not tiers.is_slow([pytest.mark.parametrize.mark])
    assert set(tiers.SLOW_MARKERS) == {E2E, FAKES, SUBPROCESS}


def test_a_stage_counts_as_e2e_only_when_the_runner_advanced_and_one_started() -> None:
    with tiers.watching(None):
        tiers.begin("tests/test_x.py::test_y", [])
        tiers.note_advance()  # a refused advance writes nothing
        assert tiers.end() == []
        tiers.begin("tests/test_x.py::test_y", [])
        tiers.note_written(["stage_started"])  # a test writing a crashed attempt itself
        assert tiers.end() == []
        tiers.begin("tests/test_x.py::test_y", [])
        tiers.note_advance()
        tiers.note_written(["project_created", "stage_started"])
        assert tiers.end() == ["runs pipeline stages (Runner.advance): mark it @pytest.mark.e2e"]
