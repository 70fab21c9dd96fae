"""Quality gates: one small named check per gate type, each returning a result record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from somas_action.core.domain import GateResult, JsonObject
from somas_action.core.settings import QualityGate


@dataclass(frozen=True)
class GateInputs:
    """What a gate can look at: the agent's reply, the artifacts written, the test results."""

    output: JsonObject
    artifacts: set[str]
    test_results: dict[str, Any] | None


def artifact_exists(gate: QualityGate, inputs: GateInputs) -> tuple[bool, str]:
    """The named artifact was written."""
    name = gate.artifact or ""
    return (
        name in inputs.artifacts,
        f"artifact {name} {'present' if name in inputs.artifacts else 'missing'}",
    )


def output_field(gate: QualityGate, inputs: GateInputs) -> tuple[bool, str]:
    """The agent's reply has a non-empty value for the field."""
    value = inputs.output.get(gate.field or "")
    ok = value not in (None, "", [], {})
    return ok, f"field {gate.field} {'present' if ok else 'empty or missing'}"


def tests_passed(gate: QualityGate, inputs: GateInputs) -> tuple[bool, str]:
    """The regression verdict passed and at least `min_tests` tests ran.

    A `test_results.json` without a verdict (written before the regression-aware runner)
    is judged the old way: no failures or errors at all.
    """
    results = inputs.test_results
    if results is None:
        return False, "no test results (this gate needs a validation stage)"
    if "verdict" in results:
        return _verdict_passed(gate.min_tests, results)
    minimum = gate.min_tests
    bad = results["failed"] + results["errors"]
    ok = bad == 0 and results["total"] >= minimum and results["exit_code"] == 0
    return (
        ok,
        f"{results['passed']}/{results['total']} passed, {bad} failed "
        f"(need >= {minimum}, 0 failed)",
    )


def _verdict_passed(minimum: int, results: dict[str, Any]) -> tuple[bool, str]:
    """Failures that were already failing on base do not count; regressions always do."""
    failed = [c for c in results["verdict"]["checks"] if not c["passed"]]
    counted = results.get("result_source") != "exit_code"  # the runner named or counted tests
    enough = not counted or results["total"] >= minimum
    head = f"{results['passed']}/{results['total']} passed, {results['failed']} failed"
    if failed:
        return False, f"{head}; " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
    if not enough:
        return False, f"{head}; fewer than {minimum} tests ran"
    bad = results["failed"] + results["errors"]
    known = f"; the {bad} failing already failed on base" if bad else ""
    return True, f"{head}, no regressions{known} (need >= {minimum} tests)"


def verdict(gate: QualityGate, inputs: GateInputs) -> tuple[bool, str]:
    """The agent's verdict equals the expected one."""
    given = inputs.output.get("verdict")
    return given == gate.equals, f"verdict {given!r}, expected {gate.equals!r}"


GATES: dict[str, Callable[[QualityGate, GateInputs], tuple[bool, str]]] = {
    "artifact_exists": artifact_exists,
    "output_field": output_field,
    "tests_passed": tests_passed,
    "verdict": verdict,
}


def evaluate(gates: tuple[QualityGate, ...], inputs: GateInputs) -> list[GateResult]:
    """Evaluate every gate (not just up to the first failure), for a complete report."""
    results: list[GateResult] = []
    for gate in gates:
        passed, detail = GATES[gate.type](gate, inputs)
        results.append({"name": gate.label, "type": gate.type, "passed": passed, "detail": detail})
    return results
