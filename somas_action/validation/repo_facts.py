"""Facts about the repository for the reviewer, the debugger and the releaser, read with git
(no checkout): the bounded diff base..branch, the files a debugger should see, the version."""

from __future__ import annotations

from typing import Any

from somas_action.core.errors import WorkspaceError
from somas_action.core.review_inputs import bound_diff, files_for_debugger
from somas_action.core.versions import VERSION_FILES, FoundVersion, current_version
from somas_action.state.git import GitWorkspace


def branch_diff(workspace: GitWorkspace, base: str, branch: str, budget: int) -> str:
    """`git diff base...branch` (the change since they diverged), within `budget` characters."""
    diff = workspace.git("diff", "--no-color", "--no-ext-diff", f"{base}...{branch}")
    return bound_diff(diff, budget)


def changed_paths(workspace: GitWorkspace, base: str, branch: str) -> list[str]:
    """Paths the branch changed since it left `base`."""
    return workspace.git("diff", "--name-only", "--no-renames", f"{base}...{branch}").splitlines()


def debugger_files(
    workspace: GitWorkspace,
    base: str,
    branch: str,
    test_results: dict[str, Any],
    limit: int,
) -> list[str]:
    """Files for the debugger, from `test_results.json`'s failures and regressions (their
    tracebacks and test files) and the diff, at most `limit` of them."""
    entries = [*test_results.get("regressions", []), *test_results.get("failures", [])]
    texts = [f"{e.get('message', '')}\n{e.get('output', '')}" for e in entries]
    texts.append(str(test_results.get("output_tail", "")))
    tree = workspace.git("ls-tree", "-r", "--name-only", branch).splitlines()
    return files_for_debugger(
        texts,
        [e.get("file") for e in entries],
        changed_paths(workspace, base, branch),
        set(tree),
        limit,
    )


def repository_version(workspace: GitWorkspace, ref: str) -> FoundVersion | None:
    """The version at `ref`: pyproject.toml, package.json or Cargo.toml, else the newest v* tag
    reachable from it."""
    files = {name: text for name in VERSION_FILES if (text := _show(workspace, ref, name))}
    tags = workspace.git("tag", "--list", "v*", "--merged", ref).splitlines()
    return current_version(files, tags)


def _show(workspace: GitWorkspace, ref: str, path: str) -> str | None:
    try:
        return workspace.git("show", f"{ref}:{path}")
    except WorkspaceError:
        return None
