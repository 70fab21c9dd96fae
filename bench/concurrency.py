"""Concurrency experiments on one state branch, with the real `somas handle-event` runs.

    .venv/bin/python bench/concurrency.py                  # this checkout
    .venv/bin/python bench/concurrency.py --code /path     # another (e.g. the "before" commit)

1. *N projects in parallel*: N workflow runs (each in its own clone, as Actions jobs are), each
   starting a different project that runs to its review gate; all push to one `somas/state`
   branch of a bare `origin`. N = 1 (the single-writer baseline), 10 and 20.
2. *N writers of one project*: a project waits at its review gate; N runs each handle a
   `/somas restart review` comment at once: each must be applied exactly once (the review stage
   runs again per restart), every conflicting run pulls and re-applies.

Per experiment: wall time (and its ratio to one writer), runs that exited non-zero or gave up,
lost push races (as the runs report them), and the check of the branch: every project's log
has a contiguous seq, unique event ids, one commit per batch, and (2) exactly N restarts with
N distinct delivery ids. GitHub is the fake server of tests/fakes (on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import github_env, scenarios  # noqa: E402
from tests.fakes import payloads  # noqa: E402
from tests.fakes.github_server import FakeGitHub  # noqa: E402
from tests.faults.harness import chain_problems  # noqa: E402

BRANCH = github_env.STATE_BRANCH
TIMEOUT = 1800


def _spawn(code: Path, checkout: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "somas_action", "--repo", str(checkout), "handle-event"],
        env={**os.environ, **env, "PYTHONPATH": str(code)},
        cwd=code,  # `python -m` puts the working folder first on sys.path
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run_all(processes: list[subprocess.Popen[str]]) -> tuple[float, list[int], list[str]]:
    started = time.monotonic()
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
    return time.monotonic() - started, [p.returncode for p in processes], outputs


def _errors(outputs: list[str], codes: list[int]) -> list[str]:
    return [out.strip().splitlines()[-1] for out, c in zip(outputs, codes, strict=True) if c][:3]


def _lost_races(outputs: list[str]) -> int | None:
    found = [int(m) for out in outputs for m in re.findall(r"(\d+) lost race", out)]
    return sum(found) if any("state branch:" in out for out in outputs) or found else None


def _project_log(origin: Path, project_id: str) -> list[dict[str, Any]]:
    text = scenarios.git(origin, "show", f"{BRANCH}:.somas/projects/{project_id}/transitions.jsonl")
    problems = chain_problems((text + "\n").encode())
    if problems:
        raise AssertionError(f"{project_id}: {problems[0]}")
    return [json.loads(line) for line in text.splitlines()]


def projects_in_parallel(code: Path, count: int, root: Path) -> dict[str, Any]:
    """N runs, N projects, one state branch."""
    fake = FakeGitHub().start()
    try:
        work = github_env.short_repo(root)
        origin = root / "origin.git"
        processes = []
        for number in range(1, count + 1):
            fake.add_issue(number, f"Issue {number}", "", ())
            checkout = work if number == 1 else github_env.clone(origin, root / f"run-{number}")
            event = root / f"dispatch-{number}.json"
            event.write_text(
                json.dumps(
                    payloads.workflow_dispatch(fake.repository, {"issue_number": str(number)})
                )
            )
            env = github_env.actions_env(fake, "workflow_dispatch", event, str(number))
            processes.append(_spawn(code, checkout, env))
        seconds, codes, outputs = _run_all(processes)
    finally:
        fake.stop()
    lost, doubled, commits = 0, 0, 0
    subjects = scenarios.git(origin, "log", "--format=%s", BRANCH).splitlines()
    for number in range(1, count + 1):
        pid = f"project-{number}"
        try:
            events = _project_log(origin, pid)
        except (subprocess.CalledProcessError, AssertionError):
            lost += 1
            continue
        ids = [e["id"] for e in events]
        doubled += len(ids) - len(set(ids))
        lost += events[-1]["event_type"] != "human_gate_opened"
        commits += sum(f"somas({pid}):" in s for s in subjects)
    return {
        "runs": count,
        "seconds": round(seconds, 1),
        "failed_runs": sum(1 for c in codes if c != 0),
        "gave_up": sum(1 for out in outputs if "races in a row" in out or "kept push" in out),
        "lost_races": _lost_races(outputs),
        "projects_lost": lost,
        "events_doubled": doubled,
        "commits": commits,
        "errors": _errors(outputs, codes),
    }


def writers_of_one_project(code: Path, count: int, root: Path) -> dict[str, Any]:
    """N runs, one project: each applies one `/somas restart review` comment."""
    fake = FakeGitHub().start()
    try:
        work = github_env.short_repo(root)
        origin = root / "origin.git"
        fake.add_issue(7, "Issue 7", "", ("somas:project",))
        event = root / "label.json"
        event.write_text(json.dumps(payloads.issue_labeled(fake.repository, 7)))
        first = _spawn(code, work, github_env.actions_env(fake, "issues", event, "1"))
        out = first.communicate(timeout=TIMEOUT)[0]
        if first.returncode != 0:
            raise RuntimeError(f"setting up project-7 failed: {out[-500:]}")
        processes = []
        for writer in range(count):
            login = f"writer{writer}"
            fake.permissions[login] = "write"
            cid = fake.add_comment(7, "/somas restart review", login=login)
            checkout = github_env.clone(origin, root / f"writer-{writer}")
            path = root / f"comment-{writer}.json"
            path.write_text(
                json.dumps(
                    payloads.comment_created(
                        fake.repository, 7, "/somas restart review", comment_id=cid, login=login
                    )
                )
            )
            env = github_env.actions_env(fake, "issue_comment", path, str(100 + writer))
            processes.append(_spawn(code, checkout, env))
        seconds, codes, outputs = _run_all(processes)
    finally:
        fake.stop()
    events = _project_log(origin, "project-7")
    restarts = [e for e in events if e["event_type"] == "stage_restarted"]
    deliveries = [e["data"].get("command_id") for e in restarts]
    ids = [e["id"] for e in events]
    return {
        "runs": count,
        "seconds": round(seconds, 1),
        "failed_runs": sum(1 for c in codes if c != 0),
        "gave_up": sum(1 for out in outputs if "kept changing" in out or "races in a row" in out),
        "lost_races": _lost_races(outputs),
        "conflicts": sum(out.count("changed on origin") for out in outputs),
        "restarts_recorded": len(restarts),
        "restarts_lost": count - len(set(deliveries)),
        "events_doubled": len(ids) - len(set(ids)) + len(deliveries) - len(set(deliveries)),
        "errors": _errors(outputs, codes),
    }


def main() -> int:
    """Run the experiments and print one line each, then `CONCURRENCY-JSON {...}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="SOMAS checkout under test")
    parser.add_argument("--projects", default="1,10,20", help="project counts")
    parser.add_argument("--writers", type=int, default=20, help="writers of one project")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    print(f"concurrency experiments on {args.code}")
    with tempfile.TemporaryDirectory(prefix="somas-concurrency-") as tmp:
        for count in [int(n) for n in args.projects.split(",") if n]:
            result = projects_in_parallel(args.code, count, Path(tmp) / f"projects-{count}")
            figures[f"projects_{count}"] = result
            print(f"{count:>3} projects in parallel: {json.dumps(result)}", flush=True)
        if args.writers:
            result = writers_of_one_project(args.code, args.writers, Path(tmp) / "writers")
            figures[f"writers_{args.writers}"] = result
            print(f"{args.writers:>3} writers of one project: {json.dumps(result)}", flush=True)
    one = figures.get("projects_1", {}).get("seconds")
    if one:
        for value in figures.values():
            value["vs_one_writer"] = round(value["seconds"] / one, 2)
    print("CONCURRENCY-JSON " + json.dumps({"code": str(args.code), "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
