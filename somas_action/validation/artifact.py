"""`artifacts/test_results.json`: the runbook's fields (`.failures` …) plus the base run, the
regressions (the first key), the verdict, the runner, the result source and the sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from somas_action.core.regression import Regression, Verdict
from somas_action.core.test_outcomes import CaseResult, Counts
from somas_action.sandbox.isolation import SandboxInfo
from somas_action.validation.plans import TestPlan
from somas_action.validation.tree_result import TreeRun

MAX_FAILURES = 200


def test_results(
    *,
    branch_name: str,
    branch: TreeRun,
    base: TreeRun | None,
    base_cached: bool,
    verdict: Verdict,
    plan: TestPlan | None,
    sandbox: SandboxInfo,
    test_paths: Sequence[str],
) -> dict[str, Any]:
    """The artifact; every text in it has already been redacted by the run."""
    counts = branch.counts or Counts()
    failures = _failures(branch, verdict.regressions)
    return {
        "regressions": [_regression(r) for r in verdict.regressions],
        "verdict": {
            "passed": verdict.passed,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in verdict.checks
            ],
        },
        "branch": branch_name,
        "commit": branch.commit,
        "test_paths": list(test_paths),
        "exit_code": branch.exit_code,
        "total": counts.total,
        "passed": counts.passed,
        "failed": counts.failed,
        "errors": counts.errors,
        "skipped": counts.skipped,
        "duration_seconds": branch.duration_seconds,
        "failures": failures[:MAX_FAILURES],
        "failures_omitted": max(0, len(failures) - MAX_FAILURES),
        "output_tail": branch.output_tail,
        "completed": branch.completed,
        "timed_out": branch.timed_out,
        "problem": branch.problem,
        "result_source": branch.result_source,
        "runner": plan.runner if plan else None,
        "setup": list(plan.setup) if plan else [],
        "command": plan.command if plan else None,
        "added_tests": list(verdict.added_tests),
        "changed_tests": list(verdict.changed_tests),
        "base": None if base is None else _base(base, base_cached),
        "sandbox": sandbox.as_json(),
    }


def _regression(regression: Regression) -> dict[str, Any]:
    return {
        "test": regression.test,
        "base": "passed",
        "branch": regression.branch,
        "message": regression.message,
        "output": regression.detail,
        "file": regression.file,
    }


def _failures(run: TreeRun, regressions: Sequence[Regression]) -> list[dict[str, Any]]:
    """Failing tests, regressions first; a run that did not complete adds its own entry."""
    regressed = {r.test for r in regressions}
    failing = [case for case in run.cases or () if case.failing]
    failing.sort(key=lambda case: case.test not in regressed)
    entries = [_failure(case, case.test in regressed) for case in failing]
    killed = any(case.message.startswith("killed:") for case in failing)
    failed_silently = not failing and run.exit_code not in (0, None)
    if (not run.completed and not killed) or failed_silently:
        entries.insert(0, _run_failure(run))
    return entries


def _failure(case: CaseResult, regression: bool) -> dict[str, Any]:
    return {
        "test": case.test,
        "kind": "failure" if case.outcome == "failed" else "error",
        "message": case.message,
        "output": case.detail,
        "file": case.file,
        "regression": regression,
    }


def _run_failure(run: TreeRun) -> dict[str, Any]:
    """The run itself as a failure: a setup error, a timeout, a build error, a crash."""
    message = run.problem or f"the test command exited {run.exit_code} and named no failing test"
    return {
        "test": "(test run)",
        "kind": "error",
        "message": message,
        "output": run.output_tail,
        "file": None,
        "regression": False,
    }


def _base(base: TreeRun, cached: bool) -> dict[str, Any]:
    counts = base.counts or Counts()
    return {
        "commit": base.commit,
        "completed": base.completed,
        "problem": base.problem,
        "exit_code": base.exit_code,
        "total": counts.total,
        "passed": counts.passed,
        "failed": counts.failed,
        "errors": counts.errors,
        "skipped": counts.skipped,
        "result_source": base.result_source,
        "duration_seconds": base.duration_seconds,
        "cached": cached,
    }
