"""Read what a test command reported: its JUnit report, else its console output; name the
test a killed run was in."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from somas_action.core.test_outcomes import (
    DETAIL_CHARS,
    CaseResult,
    Counts,
    ResultSource,
    clip,
    counts_of,
)
from somas_action.core.test_output import parse_cases, parse_summary, running_test
from somas_action.validation.junit import JUnitUnreadable, read_junit
from somas_action.validation.plans import REPORTS_VAR, TestPlan

CONTEXT_WHEN_SHORTER = 300


def read_results(
    plan: TestPlan, folders: dict[str, Path], output: str
) -> tuple[ResultSource, list[CaseResult] | None, Counts | None, str]:
    """JUnit, else per-test lines, else a summary line, else nothing (the exit code)."""
    note = ""
    if plan.junit is not None:
        report = _report_path(plan.junit, folders)
        try:
            cases = read_junit(report, folders["tree"], plan.dialect)
        except JUnitUnreadable as exc:
            cases, note = None, f"JUnit report unusable: {exc}"
        if cases is not None:
            return "junit", cases, counts_of(cases), note
    cases = parse_cases(output)
    if cases:
        return "output", cases, counts_of(cases), note
    counts = parse_summary(output)
    if counts is not None:
        return "summary", None, counts, note
    return "exit_code", None, None, note


def tree_relative(cases: list[CaseResult], tree: Path) -> list[CaseResult]:
    """Runners that name a test by its file's absolute path (node's per-file entries) give a
    path inside this run's scratch folder; make it relative so runs can be compared."""
    prefix = f"{tree}/"
    return [
        replace(
            case,
            test=case.test.replace(prefix, ""),
            file=case.file.replace(prefix, "") if case.file else case.file,
        )
        for case in cases
    ]


def with_console_context(cases: list[CaseResult], output: str) -> list[CaseResult]:
    """A failure whose report says little (node's `test failed` for a file that did not load)
    gets the console lines around the first mention of the test: the real error is there."""
    lines = output.splitlines()
    enriched = []
    for case in cases:
        if case.failing and len(case.detail) < CONTEXT_WHEN_SHORTER:
            index = next((i for i, line in enumerate(lines) if case.test in line), None)
            if index is not None:
                window = "\n".join(lines[max(0, index - 3) : index + 20])
                case = replace(case, detail=clip(f"{window}\n{case.detail}", DETAIL_CHARS))
        enriched.append(case)
    return enriched


def _report_path(junit: str, folders: dict[str, Path]) -> Path:
    if junit.startswith(REPORTS_VAR):
        return folders["reports"] / junit[len(REPORTS_VAR) :].lstrip("/")
    return folders["tree"] / junit


def hung_case(
    cases: list[CaseResult] | None,
    output: str,
    why: str,
    source: ResultSource,
) -> tuple[list[CaseResult] | None, str]:
    """Name the test that was running when the run was killed (`why`), as an error carrying the
    output from its line on; also the run's problem text."""
    test = running_test(output)
    problem = f"killed: {why}" + (f" while running {test}" if test else "")
    if test is None or source in ("summary", "exit_code"):
        return cases, problem
    # from the hung test's own line on: a stack dump there (pytest's faulthandler) shows the
    # innermost frame first, where it hangs
    start = output.rfind(test)
    detail = output[start : start + DETAIL_CHARS] if start >= 0 else clip(output, DETAIL_CHARS)
    hung = CaseResult(test, "error", _file_of(test), f"killed: {why}", detail)
    kept = [case for case in cases or [] if case.test != test]
    return [*kept, hung], problem


def _file_of(test: str) -> str | None:
    path = test.split("::", 1)[0]
    return path if path.endswith((".py", ".rs")) else None
