"""Runs `action.yml` the way the GitHub Actions runner runs a composite action.

What it reproduces: inputs (defaults + the caller's `with:`) reach steps only through
`${{ … }}` in `env:`/`with:`, which are evaluated before the step; each `run:` step is a
temporary script run as `bash --noprofile --norc -eo pipefail <file>` in `$GITHUB_WORKSPACE`;
every step gets fresh `$GITHUB_OUTPUT`/`$GITHUB_STEP_SUMMARY` files, read back afterwards
(heredoc or `name=value` lines); `steps.<id>.outputs` feed later steps and the action's
outputs; the job summary is the concatenation of the steps' summaries.

`if:` conditions are evaluated (comparisons joined by `&&`, over inputs, step outputs and
`runner.os`). `uses:` steps are emulated: setup-python reports this Python as `python-path`;
`actions/cache/restore` and `actions/cache/save` copy the path to and from a folder per key
under `cache_dir` (the real service stores a tarball in the cloud; the copy stands for it).

What it does not: other `uses:` steps, masking, and the runner's own log decoration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import tiers

ROOT = Path(__file__).resolve().parent.parent
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SETUP_PYTHON = "actions/setup-python@"
CACHE_RESTORE = "actions/cache/restore@"
CACHE_SAVE = "actions/cache/save@"
_CONDITION = re.compile(r"^\s*([\w.-]+)\s*(==|!=)\s*'([^']*)'\s*$")


@dataclass
class StepResult:
    """One step as run."""

    name: str
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    seconds: float
    summary: str = ""


@dataclass
class ActionRun:
    """The whole composite action as run for one job."""

    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def code(self) -> int:
        return next((s.code for s in self.steps if s.code), 0)

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)


def read_output_file(text: str) -> dict[str, str]:
    """Parse `$GITHUB_OUTPUT`/`$GITHUB_ENV` as the runner does (`k=v` or heredoc `k<<D`)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
    return values


def _evaluate(template: str, context: dict[str, Any]) -> str:
    """`${{ inputs.x }}`, `${{ steps.id.outputs.y }}`, `${{ github.token }}`."""

    def one(match: re.Match[str]) -> str:
        value: Any = context
        for part in match.group(1).split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return "" if value is None else str(value)

    return EXPRESSION.sub(one, template)


def _lookup(context: dict[str, Any], dotted: str) -> str:
    value: Any = context
    for part in dotted.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return "" if value is None else str(value)


def condition_holds(condition: str, context: dict[str, Any]) -> bool:
    """An `if:` of comparisons joined by `&&` (`a == 'x' && b != 'y'`), as the runner reads it."""
    for part in condition.split("&&"):
        match = _CONDITION.match(part)
        if match is None:
            raise NotImplementedError(f"if: {condition}")
        name, operator, literal = match.groups()
        if (_lookup(context, name) == literal) != (operator == "=="):
            return False
    return True


def _uses(step: dict[str, Any], context: dict[str, Any], cache_dir: Path) -> dict[str, str]:
    """Emulate a `uses:` step; its outputs."""
    if step["uses"].startswith(SETUP_PYTHON):
        return {"python-path": sys.executable, "python-version": sys.version.split()[0]}
    with_ = {k: _evaluate(str(v), context) for k, v in (step.get("with") or {}).items()}
    stored = cache_dir / with_["key"]
    path = Path(with_["path"])
    if step["uses"].startswith(CACHE_RESTORE):
        if not stored.is_dir():
            return {"cache-hit": "false"}
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(stored, path, symlinks=True)
        return {"cache-hit": "true", "cache-matched-key": with_["key"]}
    if step["uses"].startswith(CACHE_SAVE):
        if not stored.exists():  # a cache entry is never overwritten
            shutil.copytree(path, stored, symlinks=True)
        return {}
    raise NotImplementedError(step["uses"])


def run_action(
    action_path: Path,
    with_inputs: dict[str, str],
    env: dict[str, str],
    workspace: Path,
    runner_temp: Path,
    cache_dir: Path | None = None,
) -> ActionRun:
    """Run every step of the composite action at `action_path` for one job."""
    tiers.uses(tiers.E2E, "runs the composite action")
    action = yaml.safe_load((action_path / "action.yml").read_text())
    inputs = {
        name: _evaluate(str(spec.get("default", "")), {"github": {"token": env["GITHUB_TOKEN"]}})
        for name, spec in action["inputs"].items()
    }
    unknown = set(with_inputs) - set(inputs)
    if unknown:
        raise ValueError(f"the action has no inputs {sorted(unknown)}")
    inputs.update(with_inputs)
    steps: dict[str, dict[str, Any]] = {}
    run = ActionRun()
    base_env = {
        **env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(action_path),
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(runner_temp),
    }
    env_file = runner_temp / f"env-{time.monotonic_ns()}"
    env_file.write_text("")
    cache_dir = cache_dir or runner_temp / "actions-cache"
    for step in action["runs"]["steps"]:
        context = {
            "inputs": inputs,
            "steps": steps,
            "github": {"token": env["GITHUB_TOKEN"]},
            "runner": {"os": "Linux", "temp": str(runner_temp)},
        }
        if "if" in step and not condition_holds(str(step["if"]), context):
            continue
        started = time.perf_counter()
        if "uses" in step:
            outputs = _uses(step, context, cache_dir)
            result = StepResult(step.get("name", step["uses"]), 0, "", "", outputs, 0.0)
        else:
            result = _run_step(step, context, base_env, env_file, workspace, runner_temp)
        result.seconds = time.perf_counter() - started
        run.steps.append(result)
        if "id" in step:
            steps[step["id"]] = {"outputs": result.outputs}
        if result.code:
            break  # a failing step fails the action (no continue-on-error in ours)
    for name, spec in action.get("outputs", {}).items():
        run.outputs[name] = _evaluate(spec["value"], {"steps": steps})
    run.summary = "".join(s.summary for s in run.steps)
    return run


def _run_step(
    step: dict[str, Any],
    context: dict[str, Any],
    base_env: dict[str, str],
    env_file: Path,
    workspace: Path,
    runner_temp: Path,
) -> StepResult:
    assert step.get("shell") == "bash", "composite run steps must name their shell"
    files = {n: runner_temp / f"{n}-{time.monotonic_ns()}" for n in ("output", "summary")}
    for path in files.values():
        path.write_text("")
    step_env = {k: _evaluate(str(v), context) for k, v in (step.get("env") or {}).items()}
    exported = read_output_file(env_file.read_text())  # what earlier steps put in $GITHUB_ENV
    full_env = {
        **base_env,
        **exported,
        **step_env,
        "GITHUB_OUTPUT": str(files["output"]),
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
        "GITHUB_ENV": str(env_file),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".sh", dir=runner_temp, delete=False) as script:
        script.write(step["run"])  # no ${{ }} substitution inside run: (our test forbids any)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", script.name],
        cwd=workspace,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    os.unlink(script.name)
    return StepResult(
        step.get("name", ""),
        done.returncode,
        done.stdout,
        done.stderr,
        read_output_file(files["output"].read_text()),
        0.0,
        files["summary"].read_text(),
    )
