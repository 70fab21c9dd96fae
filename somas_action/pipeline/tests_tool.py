"""The `run_tests` tool: the repository's own suite on the agent's files, sandboxed.

The files as the tools left them become a commit object (no branch moves), which the
validation stage's runner copies out of git and runs in the sandbox, on that commit and on its
base, exactly as validation will: the agent sees the same verdict, regressions first. Code the
agent wrote is never run in its worktree, which shares the repository's `.git/config` (and a
checkout's token). The report leaves out what differs from run to run (durations, temporary
paths), so a replay compares it as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from somas_action.core.settings import ValidationSettings
from somas_action.pipeline.validation_stage import run_suite
from somas_action.state.git import BOT_EMAIL, BOT_NAME, GitWorkspace
from somas_action.state.repo_tools import TestRunner
from somas_action.state.scratch import ScratchTree

FAILURES_SHOWN = 15
OUTPUT_CHARS = 1200
# A fixed identity and date: the same files always make the same commit id.
SNAPSHOT_ENV = {
    "GIT_AUTHOR_NAME": BOT_NAME,
    "GIT_AUTHOR_EMAIL": BOT_EMAIL,
    "GIT_COMMITTER_NAME": BOT_NAME,
    "GIT_COMMITTER_EMAIL": BOT_EMAIL,
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
# Where a sandboxed run's copy of the tree lives (`/tmp/somas-run-abc123/tree/`).
_SCRATCH_PATH = re.compile(r"/[^\s\"']*?somas-run-[^/\s\"']+/tree/")


def tests_runner(
    workspace: GitWorkspace, scratch: ScratchTree, *, base_ref: str, settings: ValidationSettings
) -> TestRunner:
    """The `run_tests` tool's runner over `scratch` (RepositoryTools calls it with its root)."""

    def run(_root: Path) -> dict[str, Any]:
        commit = snapshot(workspace, scratch)
        validation = run_suite(
            workspace,
            base_ref=base_ref,
            branch_ref=commit,
            settings=settings,
            branch_name="(the files as the tools left them)",
        )
        return report_for_model(validation.artifact)

    return run


def snapshot(workspace: GitWorkspace, scratch: ScratchTree) -> str:
    """A commit of the worktree's files on top of its base commit; no ref points at it."""
    tree = scratch.tree()
    return workspace.git(
        "commit-tree", tree, "-p", scratch.commit, "-m", "somas: run_tests", env=SNAPSHOT_ENV
    )


def report_for_model(results: dict[str, Any]) -> dict[str, Any]:
    """test_results.json as the agent needs it: the verdict, regressions, counts, failures."""
    failing_checks = [
        f"{c['name']}: {c['detail']}" for c in results["verdict"]["checks"] if not c["passed"]
    ]
    report: dict[str, Any] = {
        "verdict": "passed" if results["verdict"]["passed"] else "failed",
        "why": failing_checks,
        "regressions": [
            {"test": r["test"], "now": r["branch"], "message": _clean(r["message"])}
            for r in results["regressions"]
        ],
        "total": results["total"],
        "passed": results["passed"],
        "failed": results["failed"],
        "errors": results["errors"],
        "skipped": results["skipped"],
        "failures": [
            {
                "test": f["test"],
                "message": _clean(f["message"]),
                "output": _clean(f["output"])[-OUTPUT_CHARS:],
            }
            for f in results["failures"][:FAILURES_SHOWN]
        ],
    }
    if len(results["failures"]) > FAILURES_SHOWN:
        report["failures_not_shown"] = len(results["failures"]) - FAILURES_SHOWN
    if results["problem"]:
        report["problem"] = _clean(results["problem"])
    if results["timed_out"]:
        report["timed_out"] = results["timed_out"]
    return report


def _clean(text: str | None) -> str:
    return _SCRATCH_PATH.sub("", text or "")
