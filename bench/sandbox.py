"""What the sandbox and the regression-aware test run cost (run with the dev virtualenv).

Run from the repository root:

    .venv/bin/python bench/sandbox.py            # ~30 s on 2 cores
    .venv/bin/python bench/sandbox.py --quick    # fewer repetitions

1. Which isolation holds here, and what probing for it costs.
2. Sandbox start cost: `/bin/true` through `Sandbox.run` with bubblewrap (with and without a
   network namespace) and with the process-group fallback, against a bare `subprocess.run`.
3. Validation overhead per run on the fixture repositories (tests/fixtures/repos): wall time of
   `validate_branch` with the base run cached and not, split into time inside sandboxed
   commands and SOMAS's own overhead (git export, detection, parsing, the verdict, the cache).

The last line is `BENCH-JSON {...}` with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from somas_action.core.settings import ValidationSettings  # noqa: E402
from somas_action.sandbox.isolation import Sandbox, open_sandbox  # noqa: E402
from somas_action.sandbox.process import ProcessResult  # noqa: E402
from somas_action.validation.gate import validate_branch  # noqa: E402
from somas_action.validation.plans import python_setup  # noqa: E402
from tests.repo_fixtures import build_wheelhouse  # noqa: E402

RESULTS: dict[str, Any] = {}
REPOS = ROOT / "tests" / "fixtures" / "repos"
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of `repeats` calls of `action`, after one warm-up call."""
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def report(name: str, times: list[float]) -> None:
    median = statistics.median(times)
    p95 = sorted(times)[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    RESULTS[name] = {"median_ms": round(median * 1000, 2), "p95_ms": round(p95 * 1000, 2)}
    print(f"  {name:<44} median {ms(median):>10}   p95 {ms(p95):>10}")


def start_cost(repeats: int) -> None:
    print("\n2. sandbox start cost: /bin/true")
    scratch = Path(tempfile.mkdtemp(prefix="somas-bench-"))
    env = {"PATH": os.defpath, "HOME": str(scratch)}
    report("bare subprocess.run", timed(lambda: subprocess.run(["/bin/true"], check=True), repeats))
    fallback = open_sandbox("process-group")
    report("process-group fallback", timed(lambda: _true(fallback, scratch, env, False), repeats))
    bwrap = open_sandbox("auto")
    if bwrap.info.kind == "bubblewrap":
        report(
            "bubblewrap, no network (tests)",
            timed(lambda: _true(bwrap, scratch, env, False), repeats),
        )
        report(
            "bubblewrap, host network (setup)",
            timed(lambda: _true(bwrap, scratch, env, True), repeats),
        )
    shutil.rmtree(scratch, ignore_errors=True)


def _true(sandbox: Sandbox, scratch: Path, env: dict[str, str], network: bool) -> None:
    result = sandbox.run(
        ["/bin/true"],
        workdir=scratch,
        writable=[scratch],
        env=env,
        network=network,
        log=scratch / "log",
        timeout_seconds=30,
    )
    assert result.exit_code == 0, result.output


def isolation(repeats: int) -> None:
    print("1. isolation on this machine")
    sandbox = open_sandbox("auto")
    RESULTS["isolation"] = sandbox.info.as_json()
    RESULTS["euid"] = os.geteuid()
    print(f"  kind: {sandbox.info.kind}, network isolated: {sandbox.info.network_isolated}")
    for warning in sandbox.info.warnings:
        print(f"  warning: {warning}")
    if shutil.which("bwrap"):
        version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout
        RESULTS["bwrap_version"] = version.strip()
        print(f"  {version.strip()}, running as uid {os.geteuid()}")
    report("probe (open_sandbox auto)", timed(lambda: open_sandbox("auto"), repeats))


@contextmanager
def sandbox_timer(sandbox: Sandbox) -> Iterator[list[float]]:
    """Collects the wall time of every command run through `sandbox`."""
    spent: list[float] = []
    original = Sandbox.run

    def run(self: Sandbox, *args: Any, **kwargs: Any) -> ProcessResult:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    Sandbox.run = run  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Sandbox.run = original  # type: ignore[method-assign]


def fixture_repo(name: str, dest: Path, changes: dict[str, str]) -> Path:
    shutil.copytree(REPOS / name, dest)
    git = ["git", "-C", str(dest), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    subprocess.run([*git, "checkout", "-q", "-b", "somas/project-1"], check=True)
    for path, text in changes.items():
        (dest / path).write_text(text)
    subprocess.run([*git, "commit", "-q", "-am", "change"], check=True)
    return dest


def validation_overhead(
    fixture: str,
    name: str,
    settings: ValidationSettings,
    changes: dict[str, str],
    repeats: int,
    env: dict[str, str],
) -> None:
    sandbox = open_sandbox("auto")
    work = Path(tempfile.mkdtemp(prefix="somas-bench-"))
    repo = fixture_repo(fixture, work / "repo", changes)
    for label, cached in (("base not cached", False), ("base cached", True)):
        totals, inside = [], []
        cache = work / "cache"
        for index in range(repeats + 1):
            if not cached or index == 0:
                shutil.rmtree(cache, ignore_errors=True)
            with sandbox_timer(sandbox) as spent:
                started = time.perf_counter()
                run = validate_branch(
                    repo,
                    base_ref="main",
                    branch_ref="refs/heads/somas/project-1",
                    settings=settings,
                    cache_dir=cache,
                    sandbox=sandbox,
                    parent_env=env,
                )
                total = time.perf_counter() - started
            if index == 0 and cached:
                continue  # fills the cache
            assert run.artifact["base"]["cached"] is cached, run.artifact["base"]
            totals.append(total)
            inside.append(sum(spent))
        overhead = [t - i for t, i in zip(totals, inside, strict=True)]
        key = f"{name}, {label}"
        RESULTS[key] = {
            "total_ms": round(statistics.median(totals) * 1000, 1),
            "in_sandbox_ms": round(statistics.median(inside) * 1000, 1),
            "overhead_ms": round(statistics.median(overhead) * 1000, 1),
        }
        print(
            f"  {key:<34} total {ms(statistics.median(totals)):>10}   in sandbox "
            f"{ms(statistics.median(inside)):>10}   overhead {ms(statistics.median(overhead)):>9}"
        )
    shutil.rmtree(work, ignore_errors=True)


def offline_wheels() -> Path:
    """The wheelhouse plus the Python fixture's test dependency, built here (as the tests do)."""
    out = Path(tempfile.mkdtemp(prefix="somas-bench-wheels-"))
    build_wheelhouse(out, out / "padkit-src")
    shutil.rmtree(out / "padkit-src")
    return out


def settings(**values: Any) -> ValidationSettings:
    base: dict[str, Any] = {
        "setup": None,
        "command": None,
        "junit": None,
        "timeout_minutes": 10,
        "per_test_timeout_seconds": 120,
        "env": (),
        "isolation": "auto",
        "read_only_paths": (),
    }
    base.update(values)
    return ValidationSettings(**base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats = 5 if args.quick else 20
    runs = 2 if args.quick else 5
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    isolation(repeats)
    start_cost(repeats)
    print("\n3. validation per run (base + branch, or branch only when the base is cached)")
    env = dict(os.environ)
    calc = (REPOS / "neutral" / "calc.sh").read_text().replace("$1 + $2", "$1 * $2")
    validation_overhead(
        "neutral", "neutral (sh)", settings(command="sh run_tests.sh"), {"calc.sh": calc}, runs, env
    )
    if shutil.which("node"):
        math = (REPOS / "node_pkg" / "lib" / "math.js").read_text().replace("a + b", "a - b")
        validation_overhead("node_pkg", "node --test", settings(), {"lib/math.js": math}, runs, env)
    if any(WHEELHOUSE.glob("pytest-*.whl")):
        wheels = offline_wheels()
        install = '--quiet --no-index --find-links "$SOMAS_WHEELHOUSE" pytest padkit'
        python = settings(
            setup=(python_setup(install),),
            env=("SOMAS_WHEELHOUSE",),
            read_only_paths=(str(wheels),),
        )
        slug = (REPOS / "python_pkg" / "src" / "textkit" / "slug.py").read_text()
        validation_overhead(
            "python_pkg",
            "pytest (venv + pip setup)",
            python,
            {"src/textkit/slug.py": slug.replace("separator.join", "'-'.join")},
            max(1, runs // 2),
            {**env, "SOMAS_WHEELHOUSE": str(wheels)},
        )
        shutil.rmtree(wheels, ignore_errors=True)
    print("BENCH-JSON " + json.dumps(RESULTS, sort_keys=True))


if __name__ == "__main__":
    main()
