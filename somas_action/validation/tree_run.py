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
from typing import Any, Literal

from somas_action.core.errors import SomasError
from somas_action.core.regression import RunSummary
from somas_action.core.test_outcomes import (
    DETAIL_CHARS,
    CaseResult,
    Counts,
    ResultSource,
    clip,
    counts_of,
)
from somas_action.core.test_output import parse_cases, parse_summary, running_test
from somas_action.sandbox.environment import redact, sandbox_environment
from somas_action.sandbox.isolation import Sandbox
from somas_action.sandbox.process import ProcessResult
from somas_action.validation.junit import JUnitUnreadable, read_junit
from somas_action.validation.plans import REPORTS_VAR, TestPlan

TimedOut = Literal["overall", "per_test"]
OUTPUT_TAIL_LINES = 40
CONTEXT_WHEN_SHORTER = 300
INACTIVITY_GRACE = 0.25  # the runner's own per-test timeout (node, pytest's faulthandler) first


@dataclass(frozen=True)
class Limits:
    """Time limits for one tree: setup and tests share `total_seconds`."""

    total_seconds: float
    per_test_seconds: float


@dataclass(frozen=True)
class TreeRun:
    """What running the plan on one commit gave."""

    commit: str
    completed: bool
    problem: str
    exit_code: int | None
    timed_out: TimedOut | None
    result_source: ResultSource
    cases: tuple[CaseResult, ...] | None
    counts: Counts | None
    duration_seconds: float
    output_tail: str

    def summary(self) -> RunSummary:
        """The part the verdict needs."""
        return RunSummary(self.completed, self.exit_code, self.cases, self.counts, self.problem)

    def as_json(self) -> dict[str, Any]:
        """For the base-run cache."""
        return {
            "commit": self.commit,
            "completed": self.completed,
            "problem": self.problem,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "result_source": self.result_source,
            "cases": None if self.cases is None else [_case_json(c) for c in self.cases],
            "counts": None if self.counts is None else self.counts.__dict__,
            "duration_seconds": self.duration_seconds,
            "output_tail": self.output_tail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TreeRun:
        """Back from `as_json`."""
        cases = data["cases"]
        counts = data["counts"]
        return cls(
            commit=data["commit"],
            completed=data["completed"],
            problem=data["problem"],
            exit_code=data["exit_code"],
            timed_out=data["timed_out"],
            result_source=data["result_source"],
            cases=None if cases is None else tuple(CaseResult(**c) for c in cases),
            counts=None if counts is None else Counts(**counts),
            duration_seconds=data["duration_seconds"],
            output_tail=data["output_tail"],
        )


def _case_json(case: CaseResult) -> dict[str, Any]:
    return {
        "test": case.test,
        "outcome": case.outcome,
        "file": case.file,
        "message": case.message,
        "detail": case.detail,
    }


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
    source, cases, counts, note = _read_results(plan, folders, result.output)
    if cases is not None:
        cases = _tree_relative(cases, folders["tree"])
        if source == "junit":
            cases = _with_console_context(cases, result.output)
    problem = note
    if timed_out is not None:
        cases, problem = _hung(cases, result.output, timed_out, limits, source)
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


def _read_results(
    plan: TestPlan, folders: dict[str, Path], output: str
) -> tuple[ResultSource, list[CaseResult] | None, Counts | None, str]:
    """JUnit, else per-test lines, else a summary line, else nothing (the exit code)."""
    note = ""
    if plan.junit is not None:
        report = _report_path(plan.junit, folders)
        try:
            cases = read_junit(report, folders["tree"], plan.dialect)
        except JUnitUnreadable as exc:
            cases, note = None, f"JUnit report unusable: {exc}"
        if cases is not None:
            return "junit", cases, counts_of(cases), note
    cases = parse_cases(output)
    if cases:
        return "output", cases, counts_of(cases), note
    counts = parse_summary(output)
    if counts is not None:
        return "summary", None, counts, note
    return "exit_code", None, None, note


def _tree_relative(cases: list[CaseResult], tree: Path) -> list[CaseResult]:
    """Runners that name a test by its file's absolute path (node's per-file entries) give a
    path inside this run's scratch folder; make it relative so runs can be compared."""
    prefix = f"{tree}/"
    return [
        replace(
            case,
            test=case.test.replace(prefix, ""),
            file=case.file.replace(prefix, "") if case.file else case.file,
        )
        for case in cases
    ]


def _with_console_context(cases: list[CaseResult], output: str) -> list[CaseResult]:
    """A failure whose report says little (node's `test failed` for a file that did not load)
    gets the console lines around the first mention of the test: the real error is there."""
    lines = output.splitlines()
    enriched = []
    for case in cases:
        if case.failing and len(case.detail) < CONTEXT_WHEN_SHORTER:
            index = next((i for i, line in enumerate(lines) if case.test in line), None)
            if index is not None:
                window = "\n".join(lines[max(0, index - 3) : index + 20])
                case = replace(case, detail=clip(f"{window}\n{case.detail}", DETAIL_CHARS))
        enriched.append(case)
    return enriched


def _report_path(junit: str, folders: dict[str, Path]) -> Path:
    if junit.startswith(REPORTS_VAR):
        return folders["reports"] / junit[len(REPORTS_VAR) :].lstrip("/")
    return folders["tree"] / junit


def _hung(
    cases: list[CaseResult] | None,
    output: str,
    timed_out: TimedOut,
    limits: Limits,
    source: ResultSource,
) -> tuple[list[CaseResult] | None, str]:
    """Name the test that was running when the run was killed, as an error with the output."""
    if timed_out == "per_test":
        why = f"no output for {limits.per_test_seconds:.0f}s (per-test timeout)"
    else:
        why = f"the run took longer than {limits.total_seconds:.0f}s (overall timeout)"
    test = running_test(output)
    problem = f"killed: {why}" + (f" while running {test}" if test else "")
    if test is None or source in ("summary", "exit_code"):
        return cases, problem
    # from the hung test's own line on: a stack dump there (pytest's faulthandler) shows the
    # innermost frame first, where it hangs
    start = output.rfind(test)
    detail = output[start : start + DETAIL_CHARS] if start >= 0 else clip(output, DETAIL_CHARS)
    hung = CaseResult(test, "error", _file_of(test), f"killed: {why}", detail)
    kept = [case for case in cases or [] if case.test != test]
    return [*kept, hung], problem


def _file_of(test: str) -> str | None:
    path = test.split("::", 1)[0]
    return path if path.endswith((".py", ".rs")) else None


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
