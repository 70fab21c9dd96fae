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
    """Tests ran, at least `min_tests` of them, with no failures or errors."""
    results = inputs.test_results
    if results is None:
        return False, "no test results (this gate needs a validation stage)"
    minimum = gate.min_tests
    bad = results["failed"] + results["errors"]
    ok = bad == 0 and results["total"] >= minimum and results["exit_code"] == 0
    return (
        ok,
        f"{results['passed']}/{results['total']} passed, {bad} failed "
        f"(need >= {minimum}, 0 failed)",
    )


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
