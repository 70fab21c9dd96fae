"""The regression-aware validation gate: the repository's suite on the base and on the branch.

One call: `validate_branch(repo, base_ref=…, branch_ref=…, settings=…)`. The plan is detected
from the branch's tree (or taken from `validation` settings) and run on the merge base and on
the branch, each in a fresh sandboxed copy; the base run is cached by tree hash and plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from somas_action.core.errors import WorkspaceError
from somas_action.core.regression import Verdict, judge
from somas_action.core.settings import ValidationSettings
from somas_action.sandbox.environment import secret_values
from somas_action.sandbox.isolation import Sandbox, SandboxInfo, open_sandbox
from somas_action.sandbox.toolchains import find_toolchains
from somas_action.state.git import GitWorkspace
from somas_action.state.jsonio import atomic_write_json
from somas_action.validation.artifact import test_results
from somas_action.validation.plans import TestPlan, plan_for
from somas_action.validation.tree_result import TreeRun
from somas_action.validation.tree_run import Limits, RunContext, run_tree

CACHE_FORMAT = 1
NO_PLAN = (
    "no test command: nothing in the tree says how to run its tests; set validation.command "
    "(and validation.setup) in .somas/config.yml, see docs/configuration.md#validation"
)


@dataclass(frozen=True)
class ValidationRun:
    """Everything one validation produced; `artifact` is test_results.json."""

    artifact: dict[str, Any]
    verdict: Verdict
    branch: TreeRun
    base: TreeRun | None
    base_cached: bool
    plan: TestPlan | None
    sandbox: SandboxInfo


def validate_branch(
    repo: Path,
    *,
    base_ref: str,
    branch_ref: str,
    settings: ValidationSettings,
    branch_name: str | None = None,
    named_tests: Sequence[str] = (),
    cache_dir: Path | None = None,
    parent_env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
    scratch_parent: Path | None = None,
) -> ValidationRun:
    """Run the suite on `branch_ref` and on its merge base with `base_ref`, and judge.

    Raises WorkspaceError only when `branch_ref` does not exist; everything the tests do
    (setup failure, timeout, collection error) is in the result.
    """
    workspace = GitWorkspace(repo)
    branch_commit = workspace.rev(branch_ref)
    if branch_commit is None:
        raise WorkspaceError(
            f"branch {branch_ref!r} does not exist; the implementation stage makes it"
        )
    base_commit = _merge_base(workspace, base_ref, branch_commit)
    env = dict(os.environ if parent_env is None else parent_env)
    context = _context(settings, env, sandbox, scratch_parent)
    plan, no_plan = _plan(workspace, branch_commit, settings)
    limits = Limits(settings.timeout_minutes * 60, settings.per_test_timeout_seconds)
    base, cached = None, False
    if plan is not None and base_commit is not None:
        base, cached = _base_run(workspace, base_commit, plan, limits, context, cache_dir)
    branch = _branch_run(workspace, branch_commit, plan, no_plan, limits, context)
    changed = _changed_files(workspace, base_commit, branch_commit)
    verdict = judge(base.summary() if base else None, branch.summary(), changed, named_tests)
    artifact = test_results(
        branch_name=branch_name or branch_ref.removeprefix("refs/heads/"),
        branch=branch,
        base=base,
        base_cached=cached,
        verdict=verdict,
        plan=plan,
        sandbox=context.sandbox.info,
        test_paths=named_tests,
    )
    return ValidationRun(artifact, verdict, branch, base, cached, plan, context.sandbox.info)


def _context(
    settings: ValidationSettings,
    env: dict[str, str],
    sandbox: Sandbox | None,
    scratch_parent: Path | None,
) -> RunContext:
    chosen = sandbox or open_sandbox(settings.isolation)
    tools = find_toolchains(env, chosen.hidden, settings.read_only_paths)
    return RunContext(
        sandbox=chosen.showing(tools.folders),
        parent_env=env,
        allow=settings.env,
        toolchain_env=tools.env,
        secrets=secret_values(env),
        scratch_parent=scratch_parent,
    )


def _merge_base(workspace: GitWorkspace, base_ref: str, branch_commit: str) -> str | None:
    if workspace.rev(base_ref) is None:
        return None
    try:
        return workspace.git("merge-base", base_ref, branch_commit) or None
    except WorkspaceError:
        return None


def _plan(
    workspace: GitWorkspace, commit: str, settings: ValidationSettings
) -> tuple[TestPlan | None, str]:
    """Detect on a throwaway copy of the branch's tree (each run gets a fresh one); the plan,
    or None and why."""
    folder = Path(tempfile.mkdtemp(prefix="somas-detect-"))
    try:
        workspace.export(commit, folder)
    except (WorkspaceError, tarfile.TarError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return None, f"the tree of {commit[:12]} could not be copied: {exc}"
    try:
        plan = plan_for(folder, settings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return plan, "" if plan is not None else NO_PLAN


def _base_run(
    workspace: GitWorkspace,
    commit: str,
    plan: TestPlan,
    limits: Limits,
    context: RunContext,
    cache_dir: Path | None,
) -> tuple[TreeRun, bool]:
    key = _cache_key(workspace, commit, plan, context)
    path = cache_dir / "test-runs" / f"{key}.json" if cache_dir is not None else None
    cached = _read_cache(path)
    if cached is not None:
        return TreeRun.from_json({**cached, "commit": commit}), True
    run = run_tree(commit, lambda dest: workspace.export(commit, dest), plan, limits, context)
    if path is not None and run.completed:
        atomic_write_json(path, run.as_json())
    return run, False


def _cache_key(workspace: GitWorkspace, commit: str, plan: TestPlan, context: RunContext) -> str:
    """Same tree, same plan, same isolation and same allowlisted values: same results."""
    parts = {
        "format": CACHE_FORMAT,
        "tree": workspace.git("rev-parse", f"{commit}^{{tree}}"),
        "plan": plan.cache_key_parts(),
        "isolation": context.sandbox.info.kind,
        "env": {name: context.parent_env.get(name) for name in context.allow},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read_cache(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        TreeRun.from_json({**data, "commit": ""})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache entry is ignored and rewritten
    return data if isinstance(data, dict) else None


def _branch_run(
    workspace: GitWorkspace,
    commit: str,
    plan: TestPlan | None,
    no_plan: str,
    limits: Limits,
    context: RunContext,
) -> TreeRun:
    if plan is None:
        return TreeRun(commit, False, no_plan, None, None, "exit_code", None, None, 0.0, "")
    return run_tree(commit, lambda dest: workspace.export(commit, dest), plan, limits, context)


def _changed_files(workspace: GitWorkspace, base: str | None, branch: str) -> list[str]:
    if base is None:
        return workspace.git("ls-tree", "-r", "--name-only", branch).splitlines()
    return workspace.git("diff", "--name-only", "--no-renames", base, branch).splitlines()
