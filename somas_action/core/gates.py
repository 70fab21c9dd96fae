"""Quality gates: one small named check per gate type, each returning a result record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateInputs:
    """What a gate can look at: the agent's reply, the artifacts written, the test results."""

    output: dict[str, Any]
    artifacts: set[str]
    test_results: dict[str, Any] | None


def artifact_exists(gate: dict[str, Any], inputs: GateInputs) -> tuple[bool, str]:
    """The named artifact was written."""
    name = gate["artifact"]
    return (
        name in inputs.artifacts,
        f"artifact {name} {'present' if name in inputs.artifacts else 'missing'}",
    )


def output_field(gate: dict[str, Any], inputs: GateInputs) -> tuple[bool, str]:
    """The agent's reply has a non-empty value for the field."""
    value = inputs.output.get(gate["field"])
    ok = value not in (None, "", [], {})
    return ok, f"field {gate['field']} {'present' if ok else 'empty or missing'}"


def tests_passed(gate: dict[str, Any], inputs: GateInputs) -> tuple[bool, str]:
    """Tests ran, at least `min_tests` of them, with no failures or errors."""
    results = inputs.test_results
    if results is None:
        return False, "no test results (this gate needs a validation stage)"
    minimum = gate.get("min_tests", 1)
    bad = results["failed"] + results["errors"]
    ok = bad == 0 and results["total"] >= minimum and results["exit_code"] == 0
    return (
        ok,
        f"{results['passed']}/{results['total']} passed, {bad} failed "
        f"(need >= {minimum}, 0 failed)",
    )


def verdict(gate: dict[str, Any], inputs: GateInputs) -> tuple[bool, str]:
    """The agent's verdict equals the expected one."""
    given = inputs.output.get("verdict")
    return given == gate["equals"], f"verdict {given!r}, expected {gate['equals']!r}"


GATES: dict[str, Callable[[dict[str, Any], GateInputs], tuple[bool, str]]] = {
    "artifact_exists": artifact_exists,
    "output_field": output_field,
    "tests_passed": tests_passed,
    "verdict": verdict,
}


def _default_name(gate: dict[str, Any]) -> str:
    subject = gate.get("artifact") or gate.get("field") or gate.get("equals")
    return f"{gate['type']}:{subject}" if subject else gate["type"]


def evaluate(gates: tuple[dict[str, Any], ...], inputs: GateInputs) -> list[dict[str, Any]]:
    """Evaluate every gate (not just up to the first failure), for a complete report."""
    results = []
    for gate in gates:
        passed, detail = GATES[gate["type"]](gate, inputs)
        results.append(
            {
                "name": gate.get("name") or _default_name(gate),
                "type": gate["type"],
                "passed": passed,
                "detail": detail,
            }
        )
    return results
