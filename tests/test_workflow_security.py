"""The workflows as GitHub would run them: who enters a project's queue, which SOMAS runs.

The cross-checks evaluate the workflows' own expressions (`if:`, concurrency groups, checkout
refs) with `tests/workflow_expressions.py`, and run the command the first job names through
the real CLI against the fake GitHub, reading its step outputs from `$GITHUB_OUTPUT`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from somas_action.cli.main import main
from somas_action.core.clock import FakeClock
from somas_action.core.triggers import Trigger, from_event
from tests import github_env
from tests.fakes import payloads
from tests.fakes.github_server import FakeGitHub
from tests.test_workflows import ACTION, ROOT, TEMPLATE, WORKFLOWS, load
from tests.workflow_expressions import evaluate, interpolate

WORKFLOW_DIR = ROOT / ".github" / "workflows"
PIPELINE = WORKFLOW_DIR / "somas-pipeline.yml"
SOMAS_CHECKOUT_PATH = ".somas-action"
PINNED_REF = "${{ job.workflow_sha || inputs.somas-ref }}"
SHA = "0123456789abcdef0123456789abcdef01234567"
ISSUE = 7
PID = "project-7"


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    return load(path)["jobs"]  # type: ignore[no-any-return]


def read_outputs(path: Path) -> dict[str, str]:
    """`$GITHUB_OUTPUT` as the runner reads it (`name<<delimiter` heredocs)."""
    outputs, lines = {}, path.read_text().splitlines()
    index = 0
    while index < len(lines):
        name, delimiter = lines[index].split("<<", 1)
        end = lines.index(delimiter, index + 1)
        outputs[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return outputs


# -- which SOMAS runs ----------------------------------------------------------------------


def somas_checkouts(path: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(job, step index, step) of every checkout of SOMAS Action in a workflow."""
    found = []
    for name, job in jobs(path).items():
        for index, step in enumerate(job.get("steps", [])):
            if (step.get("with") or {}).get("path") == SOMAS_CHECKOUT_PATH:
                found.append((name, index, step))
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_somas_checkout_is_the_commit_of_the_workflow_file(path: Path) -> None:
    """A caller that pins the workflow to a SHA runs SOMAS at that SHA, not at a movable tag."""
    checkouts = somas_checkouts(path)
    assert checkouts, f"{path.name} runs no SOMAS"
    for job_name, index, step in checkouts:
        given = step["with"]
        assert given["ref"] == PINNED_REF, f"{job_name}: {given['ref']}"
        assert "job.workflow_repository" in given["repository"]
        assert given["persist-credentials"] is False
        guard = jobs(path)[job_name]["steps"][index - 1]
        assert guard["env"]["WORKFLOW_SHA"] == "${{ job.workflow_sha }}", job_name
    declared = load(path)["on"]["workflow_call"]["inputs"]["somas-ref"]
    assert declared["default"] == ""  # no tag to fall back on
    # Every step that runs SOMAS runs the checkout made just before, in the same job.
    for job_name, job in jobs(path).items():
        steps = job.get("steps", [])
        for index, step in enumerate(steps):
            if step.get("uses") == f"./{SOMAS_CHECKOUT_PATH}":
                earlier = [s for s in steps[:index] if s in [c[2] for c in somas_checkouts(path)]]
                assert earlier, f"{job_name}: runs ./{SOMAS_CHECKOUT_PATH} without checking it out"


@pytest.mark.parametrize(
    ("job_context", "somas_ref", "expected"),
    [
        ({"workflow_sha": SHA, "workflow_repository": "somas-dev/somas-action"}, "", SHA),
        # The caller's somas-ref never overrides the commit GitHub resolved for `uses:`.
        ({"workflow_sha": SHA, "workflow_repository": "somas-dev/somas-action"}, "v1", SHA),
        ({}, SHA, SHA),  # GitHub Enterprise Server: no job.workflow_sha, the caller's SHA
    ],
)
def test_the_checkout_ref_resolves_to_the_pinned_commit(
    job_context: dict[str, str], somas_ref: str, expected: str
) -> None:
    [(_, _, step), *_] = somas_checkouts(PIPELINE)
    context = {"job": job_context, "inputs": {"somas-ref": somas_ref}}
    assert evaluate(step["with"]["ref"], context) == expected
    assert evaluate(step["with"]["repository"], context) == "somas-dev/somas-action"


@pytest.mark.parametrize(
    ("workflow_sha", "somas_ref", "code"), [("", "", 1), (SHA, "", 0), ("", SHA, 0)]
)
@pytest.mark.subprocess
def test_the_guard_step_refuses_to_run_an_unpinned_somas(
    workflow_sha: str, somas_ref: str, code: int
) -> None:
    [(job_name, index, _), *_] = somas_checkouts(PIPELINE)
    guard = jobs(PIPELINE)[job_name]["steps"][index - 1]
    env = {"WORKFLOW_SHA": workflow_sha, "SOMAS_REF": somas_ref, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", "-e", "-c", guard["run"]], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == code
    if code:
        assert result.stdout.startswith("::error title=SOMAS::") and "somas-ref" in result.stdout


# -- who enters a project's queue ----------------------------------------------------------


def concurrency_groups() -> dict[str, str]:
    """workflow/job -> the concurrency group expression of every job that changes a project."""
    groups: dict[str, str] = {}
    for path in WORKFLOWS:
        doc = load(path)
        for name, job in doc["jobs"].items():
            if (job.get("permissions") or {}).get("contents") != "write":
                continue
            group = (job.get("concurrency") or doc.get("concurrency") or {}).get("group")
            groups[f"{path.name}/{name}"] = str(group)
    return groups


def _event_contexts() -> list[dict[str, Any]]:
    """The contexts every way of touching project-7 gives a workflow: label, comment, dispatch."""
    repository = "octo-org/octo-repo"
    comment = payloads.comment_created(repository, ISSUE, "/somas approve", comment_id=1)
    events = [
        ("issues", payloads.issue_labeled(repository, ISSUE)),
        ("issue_comment", comment),
        ("workflow_dispatch", payloads.workflow_dispatch(repository, {"issue_number": "7"})),
        ("workflow_dispatch", payloads.workflow_dispatch(repository, {"project_id": PID})),
    ]
    contexts = []
    for name, payload in events:
        outcome = from_event(name, payload)  # what the first job names as project_id
        assert isinstance(outcome, Trigger)
        contexts.append(
            {
                "github": {"event_name": name, "event": payload, "run_id": "123"},
                "inputs": payload.get("inputs") or {},
                "needs": {"authorize": {"outputs": {"project_id": outcome.project_id}}},
            }
        )
    return contexts


def test_the_agent_workflows_apply_job_prepares_the_sandbox_and_runs_no_code_itself() -> None:
    """somas-agent.yml's apply job holds the write token: the reply it applies is data, and
    the only code it runs (a validation reply's tests) runs in the sandbox the action prepares."""
    apply = jobs(WORKFLOW_DIR / "somas-agent.yml")["apply"]
    somas_steps = [s for s in apply["steps"] if s.get("uses") == f"./{SOMAS_CHECKOUT_PATH}"]
    assert [s["with"]["command"] for s in somas_steps] == ["handle-event"]
    # The action's default prepares bubblewrap; nothing in the job turns it off.
    assert "prepare-sandbox" not in somas_steps[0]["with"]
    assert load(ACTION)["inputs"]["prepare-sandbox"]["default"] == "true"
    assert not [s for s in apply["steps"] if "run" in s and "pytest" in s["run"]]


def test_every_workflow_that_changes_a_project_uses_one_concurrency_group() -> None:
    """Label/comment runs and restart/resume/agent runs queue in the same group per project."""
    groups = concurrency_groups()
    assert set(groups) == {
        "somas-pipeline.yml/pipeline",
        "somas-resume.yml/resume",
        "somas-agent.yml/apply",
    }
    for where, group in groups.items():
        contexts = _event_contexts() if "pipeline" in where else _event_contexts()[3:]
        assert {interpolate(group, context) for context in contexts} == {f"somas-{PID}"}, where
    # The agent job (read-only) holds the group too, so the apply job follows it directly.
    assert load(WORKFLOW_DIR / "somas-agent.yml")["concurrency"]["cancel-in-progress"] is False


def test_the_first_job_reads_only_and_queues_nowhere() -> None:
    pipeline = load(PIPELINE)
    assert "concurrency" not in pipeline  # a workflow-level group would hold the first job
    first, answer, queued = (pipeline["jobs"][n] for n in ("authorize", "answer", "pipeline"))
    assert "concurrency" not in first and "concurrency" not in answer
    assert first["permissions"] == {"contents": "read"}
    assert answer["permissions"] == {"contents": "read", "issues": "write"}
    assert queued["needs"] == "authorize" and answer["needs"] == "authorize"
    [command] = [s["with"]["command"] for s in first["steps"] if s.get("id") == "authorize"]
    assert command == "authorize-event"
    assert set(load(ACTION)["outputs"]) >= {"verdict", "project_id"}


def authorize(
    repo: Path,
    github: FakeGitHub,
    event: str,
    payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    job: str = "authorize",
) -> tuple[int, dict[str, str]]:
    """Run a job's SOMAS step as the workflow names it; its exit code and step outputs."""
    [step] = [s for s in jobs(PIPELINE)[job]["steps"] if s.get("uses") == "./.somas-action"]
    path = repo.parent / f"{job}-{len(github.log)}.json"
    path.write_text(json.dumps(payload))
    output = repo.parent / "github_output"
    output.write_text("")
    env = github_env.actions_env(github, event, path, "41")
    for key, value in {**env, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output)}.items():
        monkeypatch.setenv(key, value)
    code = main(["--repo", str(repo), *step["with"]["command"].split()])
    return code, read_outputs(output)


def job_runs(name: str, outputs: dict[str, str]) -> bool:
    """Whether a job that `needs: authorize` starts, given the first job's outputs."""
    condition = jobs(PIPELINE)[name]["if"]
    return bool(evaluate(condition, {"needs": {"authorize": {"outputs": outputs}}}))


@pytest.mark.parametrize(
    ("login", "role", "verdict"),
    [
        ("stranger", None, "answer"),
        ("mallory", "read", "answer"),
        ("tess", "triage", "answer"),
        ("alice", "write", "run"),
        ("mona", "maintain", "run"),
    ],
)
def test_only_an_authorized_comment_enters_the_project_queue(
    tmp_path: Path,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    login: str,
    role: str | None,
    verdict: str,
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    if role:
        github.permissions[login] = role
    comment_id = github.add_comment(ISSUE, "/somas cancel", login=login)
    payload = payloads.comment_created(
        github.repository, ISSUE, "/somas cancel", comment_id=comment_id, login=login
    )
    code, outputs = authorize(repo, github, "issue_comment", payload, monkeypatch)
    assert code == 0 and outputs["verdict"] == verdict
    # The first job asked one question and wrote nothing, whoever commented.
    assert [(c.method, c.path) for c in github.log] == [
        ("GET", f"/collaborators/{login}/permission")
    ]
    assert job_runs("pipeline", outputs) is (verdict == "run")
    assert job_runs("answer", outputs) is (verdict == "answer")
    if verdict == "run":
        group = jobs(PIPELINE)["pipeline"]["concurrency"]["group"]
        assert interpolate(group, {"needs": {"authorize": {"outputs": outputs}}}) == (
            "somas-project-7"
        )
        return
    assert outputs["project_id"] == ""
    # The answer job, outside the queue: an outsider gets one reaction, a triager a reply.
    code, _ = authorize(repo, github, "issue_comment", payload, monkeypatch, job="answer")
    assert code == 0
    replies = [c for c in github.issue_comments(ISSUE) if "somas:reply" in c["body"]]
    answer = [content for _, content in github.reactions.get(comment_id, [])]
    assert (answer, len(replies)) == ((["confused"], 1) if role == "triage" else (["eyes"], 0))
    assert not (repo / ".somas" / "projects" / PID).exists()


def test_a_refused_label_or_dispatch_fails_the_first_job(
    tmp_path: Path,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = github_env.short_repo(tmp_path)
    github.add_issue(ISSUE, "x", "", ("somas:project",))
    github.permissions["tess"] = "triage"  # may label issues, may not start SOMAS
    labeled = payloads.issue_labeled(github.repository, ISSUE, sender="tess")
    code, outputs = authorize(repo, github, "issues", labeled, monkeypatch)
    assert code == 1 and outputs["verdict"] == "refuse"
    assert "the somas:project label needs the admin, maintain or write role" in (
        capsys.readouterr().out
    )
    assert not job_runs("pipeline", outputs) and not job_runs("answer", outputs)
    dispatch = payloads.workflow_dispatch(github.repository, {"issue_number": "7"}, "tess")
    code, outputs = authorize(repo, github, "workflow_dispatch", dispatch, monkeypatch)
    assert code == 1 and outputs["verdict"] == "refuse"
    assert not [c for c in github.log if c.is_write]


def test_a_continuation_dispatched_by_the_workflow_token_needs_no_question(
    tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = github_env.short_repo(tmp_path)
    dispatch = payloads.workflow_dispatch(
        github.repository, {"project_id": "project-7", "start_stage": "review"}
    )
    dispatch["sender"].update(login="github-actions[bot]", type="Bot")
    code, outputs = authorize(repo, github, "workflow_dispatch", dispatch, monkeypatch)
    assert (code, outputs) == (0, {"verdict": "run", "project_id": "project-7"})
    assert github.log == []


# -- least privilege, checked by zizmor ----------------------------------------------------


@pytest.mark.subprocess
def test_zizmor_pedantic_finds_nothing_and_every_allowance_is_explained() -> None:
    config = ROOT / ".github" / "zizmor.yml"
    result = subprocess.run(
        [
            str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "zizmor"),
            "--offline",
            "--persona",
            "pedantic",
            "--config",
            str(config),
            str(WORKFLOW_DIR),
            str(ACTION),
            str(TEMPLATE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr
    # Each `ignore:` list is preceded by a comment that says why.
    text = config.read_text()
    blocks = re.findall(r"^  ([\w-]+):\n    ignore:\n((?:      .*\n)+)", text, re.MULTILINE)
    assert {rule for rule, _ in blocks} == {
        "dangerous-triggers",
        "unpinned-uses",
        "self-repository",
        "concurrency-limits",
    }
    for rule, body in blocks:
        assert body.lstrip().startswith("#"), f"{rule}: an allowance without its reason"


def test_the_monitor_reads_the_default_branch_config_and_the_state_branch() -> None:
    [job] = jobs(WORKFLOW_DIR / "somas-monitor.yml").values()
    checkouts = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")]
    repository = [s for s in checkouts if (s.get("with") or {}).get("path") != ".somas-action"]
    [own] = repository
    assert own["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    [run] = [s for s in job["steps"] if s.get("uses") == "./.somas-action"]
    assert run["with"]["command"].split() == ["monitor", "--alert-issue", "--from-state-branch"]
    assert run["with"]["state-branch"] == "${{ inputs.state-branch }}"
    assert job["permissions"] == {"contents": "read", "issues": "write"}


def test_the_issue_form_only_requests(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> None:
    """Opening an issue through the form (its labels, sent by the author) starts nothing."""
    form = load(ROOT / ".github" / "ISSUE_TEMPLATE" / "somas-project.yml")
    assert form["labels"] == ["somas:requested"]
    repo = github_env.short_repo(tmp_path)
    github.add_issue(ISSUE, "Build it", "please", tuple(form["labels"]))
    for label in form["labels"]:
        payload = payloads.issue_labeled(
            github.repository, ISSUE, label=label, labels=tuple(form["labels"]), sender="someone"
        )
        assert github_env.deliver(repo, github, clock, "issues", payload) == 0
    assert github.log == [] and not (repo / ".somas" / "projects" / "project-7").exists()
