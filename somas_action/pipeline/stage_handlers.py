"""What each kind of stage does with a valid agent reply: artifacts, commits, test runs.

Agent output is data: file paths are confined to `workspace.allowed_paths`, sizes are
bounded, and nothing in a reply is ever run as a command (the validation stage runs the
repository's own suite in the sandbox, on the base and on the branch).
"""

from __future__ import annotations

import hashlib
from typing import Any, TypedDict

from somas_action.core import names, untrusted
from somas_action.core.domain import ArtifactRecord, JsonObject, State
from somas_action.core.error_kinds import INVALID_OUTPUT
from somas_action.core.errors import AttemptFailed, WorkspaceError
from somas_action.core.paths import confined_path
from somas_action.core.ports import Tracker
from somas_action.core.settings import StageConfig, ValidationSettings, WorkspaceSettings
from somas_action.pipeline.validation_stage import run_suite, validation_report
from somas_action.state.artifacts import write_stage_artifacts
from somas_action.state.git import GitWorkspace
from somas_action.state.store import ProjectStore


class FileRecord(TypedDict):
    """A file committed to the project branch: path, size and digest."""

    path: str
    bytes: int
    sha256: str


class ImplementationRecord(TypedDict):
    """`artifacts/implementation.json`: what was committed where, and the pull request."""

    branch: str
    commit: str
    pull_request: str
    files: list[FileRecord]
    deleted: list[str]


class StageHandlers:
    """The `generic`, `implementation` and `validation` stage handlers."""

    def __init__(
        self,
        settings: WorkspaceSettings,
        tracker: Tracker,
        workspace: GitWorkspace,
        base_branch: str,
        validation: ValidationSettings,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.workspace = workspace
        self.base_branch = base_branch
        self.validation = validation

    def write_outputs(
        self, store: ProjectStore, state: State, stage: StageConfig, output: JsonObject
    ) -> tuple[list[ArtifactRecord], dict[str, Any] | None]:
        """Write a valid reply's artifacts (and do the stage's work); their names and digests."""
        written: dict[str, Any] = {f"{stage.name}.output.json": output}
        test_results = None
        if stage.handler == "implementation":
            written["implementation.json"] = self.implement(state, output)
        elif stage.handler == "validation":
            test_results, report = self.validate(state, stage, output)
            written[names.TEST_RESULTS_ARTIFACT] = test_results
            written[names.VALIDATION_REPORT_ARTIFACT] = report
        # The reply's own artifacts go to the stage's namespace: they never replace ours.
        supplied = output.get("artifacts") or {}
        return write_stage_artifacts(store, stage.name, written, supplied), test_results

    def checked_changes(
        self, changes: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None]]:
        """`changes` (path, content or None to delete) with every path confined to
        `workspace.allowed_paths` and every size within bounds; else AttemptFailed."""
        settings = self.settings
        if len(changes) > settings.max_files:
            raise AttemptFailed(
                f"{len(changes)} files exceed workspace.max_files ({settings.max_files})",
                INVALID_OUTPUT,
            )
        checked: list[tuple[str, str | None]] = []
        for path, content in changes:
            confined = _agent_path(path, settings.allowed_paths)
            if content is not None and len(content.encode()) > settings.max_file_bytes:
                raise AttemptFailed(f"{confined} exceeds workspace.max_file_bytes", INVALID_OUTPUT)
            checked.append((confined, content))
        return checked

    def implement(self, state: State, output: JsonObject) -> ImplementationRecord:
        """Commit the reply's files (and deletions) to the project branch; open or update its
        pull request."""
        changes = [(item["path"], item["content"]) for item in output["files"]]
        checked = self.checked_changes(changes + [(p, None) for p in output.get("deleted") or []])
        branch = names.project_branch_for(state["project_id"])
        message = output.get("commit_message") or f"somas({state['project_id']}): implementation"
        commit = self.workspace.commit_files(branch, checked, message)
        pull = self.publish(state, output["summary"])
        return {
            "branch": branch,
            "commit": commit,
            "pull_request": pull,
            "files": [
                {"path": p, "bytes": len(c.encode()), "sha256": _sha256(c.encode())}
                for p, c in checked
                if c is not None
            ],
            "deleted": [p for p, c in checked if c is None],
        }

    def publish(self, state: State, summary: str) -> str:
        """Open or update the project branch's pull request (on GitHub this pushes the branch
        first); its reference."""
        return self.tracker.upsert_pull_request(
            head=names.project_branch_for(state["project_id"]),
            base=self.base_branch,
            title=f"{untrusted.title(state['title'])} (#{state['issue_number']})",
            # "Closes" is what links the pull request to the issue on GitHub.
            body=f"Closes #{state['issue_number']}.\n\n{untrusted.prose(summary)}",
        )

    def withdraw_pull_request(self, state: State) -> None:
        """A failed project's pull request must not look mergeable: close it, saying why."""
        branch = names.project_branch_for(state["project_id"])
        if self.workspace.rev(f"refs/heads/{branch}") is None:
            return  # no code was ever committed: there is no pull request
        failure = state["recovery_info"]["last_failure"]
        why = (
            f"{failure['error']['kind']}: {untrusted.prose(failure['error']['message'])}"
            if failure
            else state["status"]
        )
        reason = (
            f"SOMAS closed this pull request: {state['project_id']} failed at the "
            f"{state['current_stage']} stage ({why}). Its state and the way back are on "
            f"#{state['issue_number']}; after a restart, the next implementation opens a new "
            "pull request."
        )
        self.tracker.close_pull_request(branch, reason)

    def validate(
        self, state: State, stage: StageConfig, output: JsonObject
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The repository's suite on the branch and its base; (test_results, report)."""
        branch = names.project_branch_for(state["project_id"])
        paths = [_agent_path(p, self.settings.allowed_paths) for p in output["test_paths"]]
        run = run_suite(
            self.workspace,
            base_ref=self.base_branch,
            branch_ref=f"refs/heads/{branch}",
            settings=self.validation,
            named_tests=paths,
            branch_name=branch,
        )
        return run.artifact, validation_report(run, stage.quality_gates, output, branch)


def _agent_path(path: str, allowed: tuple[str, ...]) -> str:
    """A path from an agent's reply; a hostile or stray one is invalid output, not a crash."""
    try:
        return confined_path(path, allowed)
    except WorkspaceError as exc:
        raise AttemptFailed(str(exc), INVALID_OUTPUT) from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
