"""Job start -> first stage through `action.yml`, cold and warm, with the runner harness.

Run from the repository root (needs `npm ci` for the fake GitHub's contract data, and PyPI):

    .venv/bin/python bench/action_start.py

Each job runs every step of the composite action as the Actions runner does
(`tests/runner_harness.py`) in a fresh `RUNNER_TEMP`, against the fake GitHub and a real git
origin, for an `issues.labeled` event. The time runs from just before the action's first step
to the `ts` of the project's first `stage_started` event.

- cold: no cached virtualenv, empty pip and uv caches: uv, the wheel's build backend and every
  runtime dependency are downloaded from PyPI, the wheel built and installed;
- warm: a new job (fresh `RUNNER_TEMP`) whose cache holds the virtualenv the cold job saved.

Not included, as the harness cannot do them: the runner's own job set-up, `actions/checkout`,
`actions/setup-python` (emulated: this Python) and the cache service's download (the harness
copies a folder; GitHub's cache downloads a tarball, about 1-2 s for this size on hosted
runners). The last line is `ACTION-START-JSON {...}`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from somas_action.core.labels import label_specs  # noqa: E402
from tests import github_env, scenarios  # noqa: E402
from tests.fakes import payloads  # noqa: E402
from tests.fakes.github_server import TOKEN, FakeGitHub  # noqa: E402
from tests.runner_harness import ActionRun, run_action  # noqa: E402

STAGES = ("intake", "specification", "architecture", "implementation", "validation", "review")


def job(
    root: Path, fake: FakeGitHub, repo: Path, issue: int, name: str, pip_cache: Path
) -> tuple[ActionRun, float]:
    """One labelled issue through action.yml in a fresh RUNNER_TEMP; (run, start->stage s)."""
    runner_temp = root / f"runner-temp-{name}"
    runner_temp.mkdir()
    event = runner_temp / "event.json"
    event.write_text(json.dumps(payloads.issue_labeled(fake.repository, issue)))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "SOMAS_"))
    }
    env.update(github_env.actions_env(fake, "issues", event, name))
    env.pop("SOMAS_GITHUB_TOKEN")
    env.update(
        GITHUB_TOKEN=TOKEN,
        PIP_CACHE_DIR=str(pip_cache),
        UV_CACHE_DIR=str(pip_cache / "uv"),
        SOMAS_ACTOR="",
    )
    started = time.time()
    run = run_action(ROOT, {}, env, repo, runner_temp, cache_dir=root / "actions-cache")
    if run.code:
        raise SystemExit(f"{name}: the action failed:\n{run.steps[-1].stderr[-2000:]}")
    first = next(
        e for e in scenarios.log_of(repo, f"project-{issue}") if e["event_type"] == "stage_started"
    )
    at = datetime.fromisoformat(first["ts"].replace("Z", "+00:00")).timestamp()
    return run, at - started


def _step(run: ActionRun, name: str) -> float | None:
    return next((s.seconds for s in run.steps if s.name == name), None)


def _venv_mb(runner_temp: Path) -> float:
    venv = runner_temp / "somas-venv"
    return sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="somas-action-start-") as tmp:
        root = Path(tmp)
        fake = FakeGitHub().start()
        try:
            repo = github_env.repo_with_origin(root / "repo")
            fake.add_labels(label_specs((*STAGES, "release")))
            for issue in (7, 8):
                fake.add_issue(issue, "Add a slugify helper", "Page URLs need slugs.")
            cold, cold_s = job(root, fake, repo, 7, "cold", root / "pip-cache-empty")
            warm, warm_s = job(root, fake, repo, 8, "warm", root / "pip-cache-unused")
        finally:
            fake.stop()
        result: dict[str, Any] = {
            "cold_job_start_to_first_stage_s": round(cold_s, 2),
            "warm_job_start_to_first_stage_s": round(warm_s, 2),
            "cold_install_step_s": _step(cold, "Install SOMAS"),
            "warm_restore_step_s": _step(warm, "Restore SOMAS's virtualenv"),
            "warm_installed": _step(warm, "Install SOMAS") is not None,
            "venv_mb": round(_venv_mb(root / "runner-temp-cold"), 1),
            "steps_warm": [s.name for s in warm.steps],
        }
    print("Job start -> first stage through action.yml (runner harness, fake GitHub):")
    print(f"  cold (nothing cached)             {result['cold_job_start_to_first_stage_s']:6.2f} s")
    print(f"  warm (cached virtualenv)          {result['warm_job_start_to_first_stage_s']:6.2f} s")
    print(f"  cold install step                 {result['cold_install_step_s']:6.2f} s")
    print(f"  runtime virtualenv                {result['venv_mb']:6.1f} MB")
    print("ACTION-START-JSON " + json.dumps(result, sort_keys=True, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
