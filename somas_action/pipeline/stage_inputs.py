"""What a stage's agent sees beyond the issue and earlier outputs: the truth about the change.

Stages after implementation (validation, review, release) get the change itself, `git diff
base...branch` within `tool_loop.diff_chars`, and once validation has run, the test results
with their regressions first; the release stage gets the repository's current version; a stage
sent back by a reviewer gets the reviewer's comments. Read with git from refs, never from a
checkout.
"""

from __future__ import annotations

import json
from typing import Any

from somas_action.core import names
from somas_action.core.domain import JsonObject, State
from somas_action.core.errors import WorkspaceError
from somas_action.core.settings import StageConfig
from somas_action.state.git import GitWorkspace
from somas_action.state.store import ProjectStore
from somas_action.validation.repo_facts import branch_diff, repository_version

RELEASE_STAGE = "release"
# The parts of test_results.json an agent reads first; failures are cut to fit the budget.
_SUMMARY_KEYS = (
    "regressions",
    "verdict",
    "total",
    "passed",
    "failed",
    "errors",
    "skipped",
    "completed",
    "timed_out",
    "problem",
    "runner",
    "command",
    "base",
)


def extra_inputs(
    workspace: GitWorkspace,
    store: ProjectStore,
    state: State,
    stage: StageConfig,
    *,
    base_ref: str,
    implementation_stage: str | None,
    budget_chars: int,
) -> JsonObject:
    """The inputs `stage` gets on top of the issue and the earlier outputs."""
    extra: JsonObject = {}
    request = state.get("changes_requested")
    if request is not None and request["back_to"] == stage.name:
        extra["review_changes"] = dict(request)
    branch = names.project_branch_for(state["project_id"])
    pipeline = state["pipeline"]
    after = implementation_stage in pipeline and pipeline.index(stage.name) > pipeline.index(
        implementation_stage
    )
    if after and workspace.rev(f"refs/heads/{branch}") is not None:
        change = change_input(workspace, base_ref, branch, budget_chars)
        if change is not None:
            extra["change"] = change
        results = store.artifacts_dir / names.TEST_RESULTS_ARTIFACT
        if results.exists():
            data = json.loads(results.read_text(encoding="utf-8"))
            extra["test_results"] = test_results_summary(data, budget_chars)
    if stage.name == RELEASE_STAGE:
        found = repository_version(workspace, base_ref) if workspace.rev(base_ref) else None
        extra["repository_version"] = (
            {"version": found.version, "source": found.source} if found else None
        )
    return extra


def change_input(workspace: GitWorkspace, base: str, branch: str, budget: int) -> JsonObject | None:
    """`{"base", "branch", "diff"}`: the change since the branch left `base`, bounded."""
    try:
        diff = branch_diff(workspace, base, f"refs/heads/{branch}", budget)
    except WorkspaceError:
        return None  # no common history with the base (or no base): nothing to compare
    return {"base": base, "branch": branch, "diff": diff}


def test_results_summary(results: dict[str, Any], budget: int) -> dict[str, Any]:
    """test_results.json for an agent: regressions first, then the verdict and counts, then as
    many failures (with their output) as fit in `budget` characters."""
    summary = {key: results[key] for key in _SUMMARY_KEYS if key in results}
    failures = list(results.get("failures") or [])
    summary["failures"] = failures
    while failures and len(json.dumps(summary)) > budget:
        failures.pop()
        summary["failures_left_out"] = len(results.get("failures") or []) - len(failures)
    if len(json.dumps(summary)) > budget:  # the regressions alone are too long
        summary["regressions"] = summary.get("regressions", [])[:20]
    return summary
