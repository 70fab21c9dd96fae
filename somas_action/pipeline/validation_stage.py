"""The validation stage's work: the repository's own suite, on the base and on the branch.

The validator agent says which tests cover the change (`test_paths`); SOMAS runs the whole
suite of the project branch and of the commit it left the base branch at, in the sandbox
(`validation.gate.validate_branch`), and the verdict decides: a test that passed on base and
does not pass on the branch fails the gate whatever the agent says. The base run is cached by
tree hash in the repository's git folder, so a second validation of the same base is free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from somas_action.core.error_kinds import CONFIG
from somas_action.core.errors import AttemptFailed
from somas_action.core.gates import GateInputs, evaluate
from somas_action.core.settings import QualityGate, ValidationSettings
from somas_action.sandbox.isolation import SandboxUnavailable
from somas_action.state.git import GitWorkspace
from somas_action.validation.gate import ValidationRun, validate_branch

# Below the repository's git folder: never committed, shared by every worktree of it.
CACHE_FOLDER = "somas-cache"


def cache_dir(workspace: GitWorkspace) -> Path:
    """Where base-run results are cached: `<git common dir>/somas-cache`."""
    common = Path(workspace.git("rev-parse", "--git-common-dir"))
    return (common if common.is_absolute() else workspace.repo / common) / CACHE_FOLDER


def run_suite(
    workspace: GitWorkspace,
    *,
    base_ref: str,
    branch_ref: str,
    settings: ValidationSettings,
    named_tests: Sequence[str] = (),
    branch_name: str | None = None,
) -> ValidationRun:
    """The suite on `branch_ref` and on its merge base with `base_ref`, judged.

    A sandbox that `validation.isolation: bubblewrap` requires and this machine refuses is a
    configuration failure of the attempt (a person installs bubblewrap or relaxes the setting).
    """
    try:
        return validate_branch(
            workspace.repo,
            base_ref=base_ref,
            branch_ref=branch_ref,
            settings=settings,
            branch_name=branch_name,
            named_tests=named_tests,
            cache_dir=cache_dir(workspace),
        )
    except SandboxUnavailable as exc:
        raise AttemptFailed(str(exc), CONFIG) from None


def validation_report(
    run: ValidationRun, gates: tuple[QualityGate, ...], output: dict[str, Any], branch: str
) -> dict[str, Any]:
    """`validation_report.json`: the gates over `test_results.json`, and what the agent said."""
    results = run.artifact
    gate_results = evaluate(gates, GateInputs(output, set(), results))
    return {
        "status": "passed" if all(g["passed"] for g in gate_results) else "failed",
        "branch": branch,
        "commit": run.branch.commit,
        "tests": {k: results[k] for k in ("total", "passed", "failed", "errors", "skipped")},
        "quality_gates": gate_results,
        "risks": output.get("risks", []),
        "agent_summary": output["summary"],
    }
