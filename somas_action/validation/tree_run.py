"""Run a test plan on one exported tree, in the sandbox, and read what it reported.

Scratch layout (one folder per run, deleted afterwards): `tree/` (the copy of the commit, the
working directory), `home/` ($HOME), `tmp/`, `venv/` (Python), `reports/` ($SOMAS_REPORTS),
`cache/` (cargo, npm, Go), `logs/`. Setup steps may use the network; build steps (compiling
tests) and the test command may not, and only the test command has the per-test timeout.
A failed setup, a timeout, a crash: each is a result with its output, never an exception.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from somas_action.core.errors import SomasError
from somas_action.sandbox.environment import redact, sandbox_environment
from somas_action.sandbox.isolation import Sandbox
from somas_action.sandbox.process import ProcessResult
from somas_action.validation.plans import TestPlan
from somas_action.validation.reading import (
    hung_case,
    read_results,
    tree_relative,
    with_console_context,
)
from somas_action.validation.tree_result import TimedOut, TreeRun

OUTPUT_TAIL_LINES = 40
INACTIVITY_GRACE = 0.25  # the runner's own per-test timeout (node, pytest's faulthandler) first


@dataclass(frozen=True)
class Limits:
    """Time limits for one tree: setup and tests share `total_seconds`."""

    total_seconds: float
    per_test_seconds: float


@dataclass(frozen=True)
class RunContext:
    """What every tree run shares: the sandbox, SOMAS's environment (read for the allowlist
    and for the values to redact), the allowlist, toolchain variables, the scratch parent."""

    sandbox: Sandbox
    parent_env: Mapping[str, str]
    allow: Sequence[str]
    toolchain_env: Mapping[str, str]
    secrets: Sequence[str]
    scratch_parent: Path | None = None


def run_tree(
    commit: str,
    export: Callable[[Path], None],
    plan: TestPlan,
    limits: Limits,
    context: RunContext,
) -> TreeRun:
    """Export `commit` with `export(dest)`, run `plan` on it in the sandbox, and clean up."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="somas-run-", dir=context.scratch_parent))
    try:
        folders = _layout(scratch)
        try:
            export(folders["tree"])
        except (SomasError, tarfile.TarError, OSError) as exc:  # e.g. a link out of the tree
            return _failed(commit, f"could not copy the tree of {commit[:12]}: {exc}", started)
        run = _run_in(folders, commit, plan, limits, context, started)
        return _redacted(run, context.secrets)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _layout(scratch: Path) -> dict[str, Path]:
    folders = {n: scratch / n for n in ("tree", "home", "tmp", "reports", "cache", "logs")}
    for folder in folders.values():
        folder.mkdir()
    folders["venv"] = scratch / "venv"
    folders["scratch"] = scratch
    return folders


def _run_in(
    folders: dict[str, Path],
    commit: str,
    plan: TestPlan,
    limits: Limits,
    context: RunContext,
    started: float,
) -> TreeRun:
    env = _environment(folders, plan, context)
    deadline = started + limits.total_seconds
    steps = [("setup", step, True) for step in plan.setup]
    steps += [("build", step, False) for step in plan.build]
    for index, (phase, step, network) in enumerate(steps, start=1):
        result = _sh(step, folders, env, context, deadline, f"{phase}-{index}", network)
        if result.timed_out or result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            problem = f"{phase} step ({step}) {why}"
            return _failed(commit, problem, started, result.output)
    inactivity = limits.per_test_seconds + max(2.0, limits.per_test_seconds * INACTIVITY_GRACE)
    result = _sh(plan.command, folders, env, context, deadline, "test", False, inactivity)
    return _results(commit, plan, folders, result, limits, started)


def _environment(folders: dict[str, Path], plan: TestPlan, context: RunContext) -> dict[str, str]:
    cache = folders["cache"]
    fixed = {
        "HOME": str(folders["home"]),
        "TMPDIR": str(folders["tmp"]),
        "SOMAS_REPORTS": str(folders["reports"]),
        "CI": "true",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": context.parent_env.get("LANG", "C.UTF-8"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_CACHE_DIR": str(cache / "pip"),
        "CARGO_HOME": str(cache / "cargo"),
        "CARGO_TERM_COLOR": "never",
        "npm_config_cache": str(cache / "npm"),
        "npm_config_update_notifier": "false",
        "GOPATH": str(cache / "go"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-modcacherw",  # Go's module cache is read-only by default: keep it deletable
        "GOTOOLCHAIN": "local",
        "NO_COLOR": "1",
        **context.toolchain_env,
    }
    env = sandbox_environment(context.parent_env, context.allow, fixed, context.sandbox.hidden)
    if plan.python_venv:
        env["VIRTUAL_ENV"] = str(folders["venv"])
        env["PATH"] = f"{folders['venv'] / 'bin'}:{env['PATH']}"
    return env


def _sh(
    text: str,
    folders: dict[str, Path],
    env: dict[str, str],
    context: RunContext,
    deadline: float,
    name: str,
    network: bool,
    inactivity: float | None = None,
) -> ProcessResult:
    return context.sandbox.run(
        ["/bin/sh", "-c", text],
        workdir=folders["tree"],
        writable=[folders["scratch"]],
        env=env,
        network=network,
        log=folders["logs"] / f"{name}.log",
        timeout_seconds=max(1.0, deadline - time.monotonic()),
        inactivity_seconds=inactivity,
    )


def _results(
    commit: str,
    plan: TestPlan,
    folders: dict[str, Path],
    result: ProcessResult,
    limits: Limits,
    started: float,
) -> TreeRun:
    timed_out: TimedOut | None = None
    if result.timed_out is not None:
        timed_out = "per_test" if result.timed_out == "inactivity" else "overall"
    source, cases, counts, note = read_results(plan, folders, result.output)
    if cases is not None:
        cases = tree_relative(cases, folders["tree"])
        if source == "junit":
            cases = with_console_context(cases, result.output)
    problem = note
    if timed_out is not None:
        cases, problem = hung_case(cases, result.output, _why(timed_out, limits), source)
    return TreeRun(
        commit=commit,
        completed=timed_out is None,
        problem=problem,
        exit_code=result.exit_code,
        timed_out=timed_out,
        result_source=source,
        cases=None if cases is None else tuple(cases),
        counts=counts,
        duration_seconds=round(time.monotonic() - started, 3),
        output_tail=_tail(result.output),
    )


def _why(timed_out: TimedOut, limits: Limits) -> str:
    if timed_out == "per_test":
        return f"no output for {limits.per_test_seconds:.0f}s (per-test timeout)"
    return f"the run took longer than {limits.total_seconds:.0f}s (overall timeout)"


def _failed(commit: str, problem: str, started: float, output: str = "") -> TreeRun:
    return TreeRun(
        commit=commit,
        completed=False,
        problem=problem,
        exit_code=None,
        timed_out=None,
        result_source="exit_code",
        cases=None,
        counts=None,
        duration_seconds=round(time.monotonic() - started, 3),
        output_tail=_tail(output),
    )


def _tail(output: str) -> str:
    return "\n".join(output.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def _redacted(run: TreeRun, secrets: Sequence[str]) -> TreeRun:
    if not secrets:
        return run
    cases = run.cases
    if cases is not None:
        cases = tuple(
            replace(
                c,
                test=redact(c.test, secrets),
                message=redact(c.message, secrets),
                detail=redact(c.detail, secrets),
            )
            for c in cases
        )
    return replace(
        run,
        cases=cases,
        problem=redact(run.problem, secrets),
        output_tail=redact(run.output_tail, secrets),
    )
