"""The regression-aware validation verdict: compare the branch's test run with the base's.

The gate passes when (1) the branch run completed, (2) no test that passed on base fails, errs,
is skipped or is missing on the branch (a regression), and (3) no test the change adds or
touches fails (a skipped one does not count against it). Without a usable base run, (2)
cannot be judged and (3) covers every test.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from somas_action.core.test_outcomes import CaseResult, Counts


@dataclass(frozen=True)
class RunSummary:
    """What the verdict needs from one run. `cases` is None when the runner named no tests,
    `counts` is None when only the exit code is known."""

    completed: bool
    exit_code: int | None
    cases: tuple[CaseResult, ...] | None
    counts: Counts | None
    problem: str = ""


@dataclass(frozen=True)
class Regression:
    """A test that passed on base and does not pass on the branch."""

    test: str
    branch: str
    message: str = ""
    detail: str = ""
    file: str | None = None


@dataclass(frozen=True)
class Check:
    """One named part of the verdict."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The gate's answer with its reasons; `regressions` come first in every report."""

    passed: bool
    checks: tuple[Check, ...]
    regressions: tuple[Regression, ...]
    changed_tests: tuple[str, ...]
    added_tests: tuple[str, ...]


UNNAMED = "(tests not named by the runner)"


def judge(
    base: RunSummary | None,
    branch: RunSummary,
    changed_files: Collection[str],
    named_tests: Collection[str] = (),
) -> Verdict:
    """The verdict on `branch`; `base` None means no baseline (base did not run or complete)."""
    usable_base = base if base is not None and base.completed else None
    regressions = find_regressions(usable_base, branch)
    added, changed = changed_cases(usable_base, branch, changed_files, named_tests)
    checks = (
        _completed_check(branch),
        _regression_check(usable_base, base, regressions),
        _changed_check(usable_base, branch, added, changed),
    )
    return Verdict(
        passed=all(check.passed for check in checks),
        checks=checks,
        regressions=tuple(regressions),
        changed_tests=tuple(case.test for case in changed),
        added_tests=tuple(case.test for case in added),
    )


def find_regressions(base: RunSummary | None, branch: RunSummary) -> list[Regression]:
    """Tests that passed on `base` and do not pass on `branch`: by name where base names them
    (all missing when the branch reported nothing: a build or collection failure), else from
    the counts or the exit codes (one unnamed entry)."""
    if base is None:
        return []
    if base.cases is not None and branch.cases is not None:
        return _named_regressions(base.cases, branch.cases)
    if base.cases is not None and branch.counts is None:  # the branch run reported nothing
        return _named_regressions(base.cases, ())
    if base.counts is not None and branch.counts is not None:
        return _counted_regressions(base.counts, branch.counts)
    if base.exit_code == 0 and branch.exit_code != 0:
        detail = f"the test command exited {branch.exit_code} on the branch and 0 on base"
        return [Regression(UNNAMED, "failed", detail)]
    return []


def changed_cases(
    base: RunSummary | None,
    branch: RunSummary,
    changed_files: Collection[str],
    named_tests: Collection[str],
) -> tuple[list[CaseResult], list[CaseResult]]:
    """(tests the branch adds, tests in files the change touches or the agent named)."""
    if branch.cases is None:
        return [], []
    before = {case.test for case in base.cases} if base and base.cases is not None else None
    added = [case for case in branch.cases if before is not None and case.test not in before]
    changed = [
        case
        for case in branch.cases
        if case not in added and _touched(case, changed_files, named_tests)
    ]
    return added, changed


def _named_regressions(
    base: tuple[CaseResult, ...], branch: tuple[CaseResult, ...]
) -> list[Regression]:
    now = {case.test: case for case in branch}
    found = []
    for case in base:
        if case.outcome != "passed":
            continue
        after = now.get(case.test)
        if after is None:
            found.append(
                Regression(
                    case.test, "missing", "passed on base, not run on the branch", file=case.file
                )
            )
        elif after.outcome != "passed":
            found.append(
                Regression(case.test, after.outcome, after.message, after.detail, after.file)
            )
    return found


def _counted_regressions(base: Counts, branch: Counts) -> list[Regression]:
    lost = base.passed - branch.passed
    broke = (branch.failed + branch.errors) - (base.failed + base.errors)
    if lost <= 0 and broke <= 0:
        return []
    detail = (
        f"passed {base.passed} -> {branch.passed}, failed {base.failed + base.errors} -> "
        f"{branch.failed + branch.errors} (the runner reports counts only)"
    )
    return [Regression(UNNAMED, "failed", detail)]


def _touched(case: CaseResult, changed_files: Collection[str], named: Collection[str]) -> bool:
    if case.file is not None and case.file in changed_files:
        return True
    return any(case.test == path or case.test.startswith(f"{path}::") for path in named)


def _completed_check(branch: RunSummary) -> Check:
    if branch.completed:
        return Check("command_completed", True, "the test command ran to its end")
    return Check("command_completed", False, branch.problem or "the test command did not finish")


def _regression_check(
    usable: RunSummary | None, base: RunSummary | None, regressions: list[Regression]
) -> Check:
    if usable is None:
        why = base.problem if base is not None and base.problem else "no base run"
        return Check("no_regressions", True, f"not judged: no baseline ({why})")
    if regressions:
        names = ", ".join(r.test for r in regressions[:5])
        more = f" and {len(regressions) - 5} more" if len(regressions) > 5 else ""
        return Check("no_regressions", False, f"{len(regressions)} regression(s): {names}{more}")
    return Check("no_regressions", True, "every test that passed on base passes on the branch")


def _changed_check(
    usable: RunSummary | None,
    branch: RunSummary,
    added: list[CaseResult],
    changed: list[CaseResult],
) -> Check:
    name = "changed_tests_pass"
    if usable is None:
        return _all_pass_check(branch)
    failing = [case.test for case in [*added, *changed] if case.failing]
    if branch.cases is None and branch.counts is None:
        ok = branch.exit_code == 0
        return Check(name, ok, f"the runner reports only its exit code: {branch.exit_code}")
    if branch.cases is None:
        return Check(name, True, "judged by the counts above (the runner names no tests)")
    if failing:
        shown = ", ".join(failing[:5])
        return Check(name, False, f"{len(failing)} added or changed test(s) do not pass: {shown}")
    return Check(name, True, f"{len(added)} added and {len(changed)} changed test(s) pass")


def _all_pass_check(branch: RunSummary) -> Check:
    name = "changed_tests_pass"
    if branch.cases is not None:
        failing = [case.test for case in branch.cases if case.failing]
        if failing or not branch.cases:
            what = ", ".join(failing[:5]) if failing else "no tests ran"
            return Check(name, False, f"without a baseline every test must pass: {what}")
        return Check(name, True, f"without a baseline: all {len(branch.cases)} tests pass")
    if branch.counts is not None:
        bad = branch.counts.failed + branch.counts.errors
        ok = bad == 0 and branch.counts.passed > 0
        return Check(name, ok, f"without a baseline: {branch.counts.passed} passed, {bad} failed")
    ok = branch.exit_code == 0
    return Check(name, ok, f"without a baseline: the test command exited {branch.exit_code}")
