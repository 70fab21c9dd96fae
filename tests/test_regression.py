"""The regression-aware verdict, as a pure function of the base and branch runs."""

from __future__ import annotations

from somas_action.core.regression import UNNAMED, RunSummary, judge
from somas_action.core.test_outcomes import CaseResult, Counts, Outcome, counts_of


def run(*cases: tuple[str, Outcome], completed: bool = True, exit_code: int = 0) -> RunSummary:
    """A run that named its tests; files follow pytest's `path::name` ids."""
    results = tuple(CaseResult(t, o, t.split("::")[0] if "::" in t else None) for t, o in cases)
    return RunSummary(completed, exit_code, results, counts_of(results))


def counted(passed: int, failed: int, exit_code: int = 0) -> RunSummary:
    """A run that printed only a summary line."""
    return RunSummary(True, exit_code, None, Counts(passed, failed))


def silent(exit_code: int) -> RunSummary:
    """A run that said nothing but its exit code."""
    return RunSummary(True, exit_code, None, None)


def checks(verdict: object) -> dict[str, bool]:
    """Check name -> passed."""
    return {c.name: c.passed for c in verdict.checks}  # type: ignore[attr-defined]


BASE = run(("a.py::one", "passed"), ("a.py::two", "passed"), ("b.py::old_bug", "failed"))


def test_a_test_that_passed_on_base_and_fails_now_is_a_regression() -> None:
    branch = run(("a.py::one", "failed"), ("a.py::two", "passed"), ("b.py::old_bug", "failed"))

    verdict = judge(BASE, branch, changed_files=["src/x.py"])

    assert [(r.test, r.branch) for r in verdict.regressions] == [("a.py::one", "failed")]
    assert checks(verdict) == {
        "command_completed": True,
        "no_regressions": False,
        "changed_tests_pass": True,
    }
    assert not verdict.passed


def test_a_failure_that_was_there_on_base_is_not_the_change_s_fault() -> None:
    verdict = judge(BASE, BASE, changed_files=["src/x.py"])

    assert verdict.passed
    assert verdict.regressions == ()


def test_missing_and_skipped_tests_are_regressions_too() -> None:
    branch = run(("a.py::two", "skipped"), ("b.py::old_bug", "failed"))

    verdict = judge(BASE, branch, changed_files=[])

    assert [(r.test, r.branch) for r in verdict.regressions] == [
        ("a.py::one", "missing"),
        ("a.py::two", "skipped"),
    ]


def test_added_tests_and_tests_in_touched_files_must_not_fail() -> None:
    branch = run(
        ("a.py::one", "passed"),
        ("a.py::two", "passed"),
        ("b.py::old_bug", "failed"),
        ("c.py::new", "passed"),
    )

    verdict = judge(BASE, branch, changed_files=["b.py", "c.py"])

    assert verdict.added_tests == ("c.py::new",)
    assert verdict.changed_tests == ("b.py::old_bug",)
    assert checks(verdict)["changed_tests_pass"] is False  # it touched b.py, b.py still fails


def test_tests_the_agent_named_count_as_changed() -> None:
    branch = run(("a.py::one", "passed"), ("a.py::two", "passed"), ("b.py::old_bug", "failed"))

    verdict = judge(BASE, branch, changed_files=[], named_tests=["b.py"])

    assert verdict.changed_tests == ("b.py::old_bug",)
    assert not verdict.passed


def test_a_run_that_did_not_complete_fails_whatever_its_tests_say() -> None:
    branch = RunSummary(False, None, BASE.cases, BASE.counts, "killed: no output for 5s")

    verdict = judge(BASE, branch, changed_files=[])

    assert checks(verdict)["command_completed"] is False
    assert verdict.checks[0].detail == "killed: no output for 5s"


def test_a_branch_that_reports_nothing_loses_every_passing_base_test() -> None:
    verdict = judge(BASE, silent(101), changed_files=[])

    assert [(r.test, r.branch) for r in verdict.regressions] == [
        ("a.py::one", "missing"),
        ("a.py::two", "missing"),
    ]
    assert checks(verdict)["changed_tests_pass"] is False


def test_counts_only_give_one_unnamed_regression() -> None:
    verdict = judge(counted(3, 1), counted(2, 2), changed_files=[])

    [regression] = verdict.regressions
    assert regression.test == UNNAMED
    assert regression.message == ("passed 3 -> 2, failed 1 -> 2 (the runner reports counts only)")
    assert judge(counted(3, 1), counted(4, 1), changed_files=[]).passed


def test_exit_codes_only() -> None:
    assert [r.test for r in judge(silent(0), silent(1), changed_files=[]).regressions] == [UNNAMED]
    assert judge(silent(0), silent(0), changed_files=[]).passed
    assert not judge(silent(1), silent(1), changed_files=[]).passed


def test_without_a_baseline_every_test_must_pass() -> None:
    broken_base = RunSummary(False, None, None, None, "setup step (pip install) exited 1")
    good = run(("a.py::one", "passed"), ("a.py::skip", "skipped"))
    bad = run(("a.py::one", "passed"), ("a.py::two", "failed"))

    assert judge(None, good, changed_files=[]).passed
    assert judge(broken_base, good, changed_files=[]).passed
    verdict = judge(broken_base, bad, changed_files=[])
    assert not verdict.passed
    assert checks(verdict)["no_regressions"] is True
    assert "no baseline (setup step (pip install) exited 1)" in verdict.checks[1].detail
    assert not judge(None, run(), changed_files=[]).passed  # no tests at all
