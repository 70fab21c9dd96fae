"""Our workflows and action.yml, cross-checked the way GitHub would resolve them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TEMPLATE = ROOT / "somas_action" / "templates" / "somas.yml"
ACTION = ROOT / "action.yml"
OUR_REPO = "somas-dev/somas-action"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
UNTRUSTED = re.compile(r"github\.event|inputs\.|github\.head_ref|steps\.[\w-]+\.outputs")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # PyYAML reads the key `on` as the boolean True
        data["on"] = data.pop(True)
    return data  # type: ignore[no-any-return]


def all_workflows() -> list[Path]:
    return [*WORKFLOWS, TEMPLATE]


def steps_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return doc["runs"]["steps"]  # type: ignore[no-any-return]
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def resolve_reusable(uses: str) -> Path | None:
    """`./.github/workflows/x.yml` or `somas-dev/somas-action/.github/workflows/x.yml@ref`."""
    if uses.startswith("./.github/workflows/"):
        return ROOT / uses[2:]
    if uses.startswith(f"{OUR_REPO}/.github/workflows/"):
        return ROOT / uses.split("@")[0][len(OUR_REPO) + 1 :]
    return None


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_least_privilege_and_timeouts(path: Path) -> None:
    doc = load(path)
    assert doc.get("permissions") == {}, "top-level permissions must be {}"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"job {name} has no permissions"
        if "uses" not in job:  # reusable-workflow calls cannot set a timeout themselves
            assert "timeout-minutes" in job, f"job {name} has no timeout-minutes"


@pytest.mark.parametrize("path", [*all_workflows(), ACTION], ids=lambda p: p.name)
def test_no_expressions_in_run_steps(path: Path) -> None:
    for step in steps_of(load(path)):
        if "run" in step:
            found = EXPRESSION.findall(step["run"])
            assert not found, f"step {step.get('name')!r} interpolates {found} into shell"


@pytest.mark.parametrize("path", [*all_workflows(), ACTION], ids=lambda p: p.name)
def test_remote_actions_are_pinned_by_sha(path: Path) -> None:
    doc = load(path)
    uses = [s["uses"] for s in steps_of(doc) if "uses" in s]
    for value in uses:
        if not value.startswith("./"):
            assert SHA_PIN.match(value.split(" ")[0]), f"{value} is not pinned to a commit SHA"


def _declared_inputs(callee: dict[str, Any]) -> dict[str, Any]:
    return callee["on"]["workflow_call"].get("inputs") or {}


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_reusable_workflow_calls_match_their_callee(path: Path) -> None:
    doc = load(path)
    for name, job in doc["jobs"].items():
        target = resolve_reusable(job.get("uses", ""))
        if target is None:
            continue
        callee = load(target)
        call = callee["on"]["workflow_call"]
        declared = _declared_inputs(callee)
        given = job.get("with") or {}
        assert set(given) <= set(declared), (
            f"{name}: undeclared inputs {set(given) - set(declared)}"
        )
        for key, spec in declared.items():
            if spec.get("required"):
                assert key in given, f"{name}: required input {key} not passed"
            if key in given and not EXPRESSION.search(str(given[key])):
                kind = {"string": str, "boolean": bool, "number": (int, float)}[spec["type"]]
                assert isinstance(given[key], kind), f"{name}: input {key} should be {spec['type']}"
        secrets = job.get("secrets") or {}
        if secrets != "inherit":
            declared_secrets = call.get("secrets") or {}
            assert set(secrets) <= set(declared_secrets), f"{name}: undeclared secrets"
        # The caller grants at least what the callee's jobs ask for.
        granted = job.get("permissions") or {}
        for callee_job in callee["jobs"].values():
            for scope, level in (callee_job.get("permissions") or {}).items():
                rank = {"none": 0, "read": 1, "write": 2}
                assert rank[granted.get(scope, "none")] >= rank[level], f"{name}: {scope}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_outputs_and_action_inputs_resolve(path: Path) -> None:
    doc = load(path)
    action_inputs = set(load(ACTION)["inputs"])
    call = (doc["on"] or {}).get("workflow_call") or {}
    for output in (call.get("outputs") or {}).values():
        for expr in EXPRESSION.findall(output["value"]):
            job, _, out = expr.strip().removeprefix("jobs.").split(".")
            assert out in doc["jobs"][job]["outputs"], f"output {expr} does not exist"
    declared = set(call.get("inputs") or {}) | set(
        ((doc["on"] or {}).get("workflow_dispatch") or {}).get("inputs") or {}
    )
    for job in doc["jobs"].values():
        step_ids = {s.get("id") for s in job.get("steps", [])}
        for expr in EXPRESSION.findall(yaml.safe_dump(job)):
            for ref in re.findall(r"inputs\.([\w-]+)", expr):
                assert ref in declared, f"inputs.{ref} is not declared"
            for ref in re.findall(r"steps\.([\w-]+)\.outputs", expr):
                assert ref in step_ids, f"steps.{ref} does not exist"
        for step in job.get("steps", []):
            if step.get("uses") == "./.somas-action":
                assert set(step.get("with") or {}) <= action_inputs


def test_action_outputs_come_from_its_steps() -> None:
    action = load(ACTION)
    ids = {s.get("id") for s in action["runs"]["steps"]}
    for name, output in action["outputs"].items():
        step = re.search(r"steps\.([\w-]+)\.outputs\.([\w-]+)", output["value"])
        assert step and step.group(1) in ids, name
        assert step.group(2) == name  # the entrypoint writes exactly these names
    for step in action["runs"]["steps"]:
        for expr in EXPRESSION.findall(yaml.safe_dump(step.get("env") or {})):
            for ref in re.findall(r"inputs\.([\w-]+)", expr):
                assert ref in action["inputs"], ref


def test_pipeline_trigger_filters_bots_and_foreign_labels() -> None:
    condition = load(ROOT / ".github" / "workflows" / "somas-pipeline.yml")["jobs"]["pipeline"][
        "if"
    ]
    assert "startsWith(github.event.label.name, 'somas:')" in condition
    assert "github.event.comment.user.type != 'Bot'" in condition
    assert (
        load(ROOT / ".github" / "workflows" / "somas-pipeline.yml")["concurrency"][
            "cancel-in-progress"
        ]
        is False
    )


def test_every_workflow_that_touches_a_project_uses_one_concurrency_group_name() -> None:
    """`somas-project-<n>` for a label, a comment, a dispatch by issue or by project id, a
    resume and an agent run: the same project never runs twice at once on GitHub."""
    groups = {
        name: load(ROOT / ".github" / "workflows" / name)["concurrency"]["group"]
        for name in ("somas-pipeline.yml", "somas-resume.yml", "somas-agent.yml")
    }
    assert (
        groups["somas-resume.yml"]
        == groups["somas-agent.yml"]
        == ("somas-${{ inputs.project_id }}")
    )
    pipeline = groups["somas-pipeline.yml"]
    assert pipeline.startswith("somas-${{ ") and pipeline.endswith(" }}")
    for source in ("github.event.issue.number", "inputs.issue_number"):
        assert f"({source} && format('project-{{0}}', {source}))" in pipeline
    assert "|| inputs.project_id ||" in pipeline
