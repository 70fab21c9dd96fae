"""Issue 14's table: every figure as a ratio against its anchor, both measured in this run.

    .venv/bin/python bench/ratios.py            # ~5 min: 10,000 projects, 1,000,000 events
    .venv/bin/python bench/ratios.py --quick    # ~1 min: 1,000 projects, 100,000 events

The machine is shared and noisy, so the ratios are what count: each command and its anchor run
alternately, several times, and the medians are compared. CPU time and peak memory are those of
the child process alone (`os.wait4`, in a small launcher: see `_LAUNCHER`). Commands run the
way an installed action runs them: bytecode compiled once (`compileall`),
`PYTHONDONTWRITEBYTECODE` unset. Test data is written with `fsync` switched off in this process
(generating it is not what is measured). The last line is `RATIOS-JSON {...}`.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import somas_action  # noqa: E402
from bench import run as base  # noqa: E402
from somas_action.cli.commands.init import scaffold  # noqa: E402

RESULTS: dict[str, Any] = {}
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
SOMAS = [sys.executable, "-m", "somas_action"]


@dataclass(frozen=True)
class Run:
    """One child process: wall and CPU seconds, peak resident memory in MiB."""

    wall: float
    cpu: float
    peak_mib: float


# Peak memory needs a small parent: Linux carries the parent's high-water RSS into a child
# across fork and exec (a `jq` started straight from this process reports this process's own
# ~170 MiB). So commands are started by a launcher that is started first, while the bench is
# still small, and forks each command from its own ~10 MiB (the floor of every peak shown).
_LAUNCHER = r"""
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(job["cwd"] or ".")
            null = os.open(os.devnull, os.O_WRONLY)
            err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(null, 1)
            os.dup2(err, 2)
            os.execvpe(job["argv"][0], job["argv"], job["env"])
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps([code, wall, cpu, usage.ru_maxrss / 1024]), flush=True)
"""
_launcher: subprocess.Popen[str] | None = None


def start_launcher() -> None:
    """Start the launcher now, while this process is small (see `_LAUNCHER`)."""
    global _launcher
    _launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def measure(argv: list[str], cwd: Path | None = None, ok: tuple[int, ...] = (0, 1, 2)) -> Run:
    """Run `argv` once, output discarded; its own rusage, not the other children's."""
    if _launcher is None:
        start_launcher()
    assert _launcher is not None and _launcher.stdin and _launcher.stdout
    with tempfile.NamedTemporaryFile(prefix="somas-ratios-err-") as err:
        job = {"argv": argv, "cwd": str(cwd) if cwd else "", "env": ENV, "stderr": err.name}
        _launcher.stdin.write(json.dumps(job) + "\n")
        _launcher.stdin.flush()
        code, wall, cpu, peak = json.loads(_launcher.stdout.readline())
        if code not in ok:
            error = Path(err.name).read_text(errors="replace")
            raise RuntimeError(f"{argv} exited {code}: {error[-500:]}")
    return Run(wall, cpu, peak)


def versus(
    ours: list[str], anchor: list[str], runs: int, cwd: Path | None = None
) -> dict[str, Any]:
    """Ours and the anchor, alternately, `runs` times each (after one warm-up of each)."""
    measure(ours, cwd)
    measure(anchor, cwd)
    mine: list[Run] = []
    theirs: list[Run] = []
    for _ in range(runs):
        mine.append(measure(ours, cwd))
        theirs.append(measure(anchor, cwd))

    def med(values: list[Run], field: str) -> float:
        return statistics.median(getattr(v, field) for v in values)

    return {
        "ours_wall_s": med(mine, "wall"),
        "anchor_wall_s": med(theirs, "wall"),
        "wall_ratio": med(mine, "wall") / med(theirs, "wall"),
        "cpu_ratio": med(mine, "cpu") / max(med(theirs, "cpu"), 1e-4),
        "ours_peak_mib": med(mine, "peak_mib"),
        "anchor_peak_mib": med(theirs, "peak_mib"),
    }


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Generating test data is not what is measured: skip the fsyncs while writing it."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def row(name: str, figure: str, goal: str, met: bool | None) -> None:
    verdict = "" if met is None else ("met" if met else "NOT MET")
    print(f"  {name:<52} {figure:<28} goal {goal:<16} {verdict}", flush=True)


# -- status and health: one project, cold start ------------------------------------------------


def bench_one_project(runs: int) -> None:
    print("\ncold start of one command vs jq on the same state.json", flush=True)
    with tempfile.TemporaryDirectory(prefix="somas-ratios-") as tmp:
        repo = Path(tmp) / "repo"
        with no_fsync():
            base.demo_run(repo)
        state = repo / ".somas/projects/project-1/state.json"
        jq = ["jq", ".status, .current_stage", str(state)]
        cli = [*SOMAS, "--repo", str(repo)]
        status = versus([*cli, "status", "project-1"], jq, runs)
        health = versus([*cli, "health", "project-1"], jq, runs)
    RESULTS["status"], RESULTS["health"] = status, health
    row(
        "somas status <id> / jq",
        f"{status['wall_ratio']:.1f}x wall, {status['cpu_ratio']:.1f}x CPU",
        "<= 2.5x jq",
        status["wall_ratio"] <= 2.5,
    )
    row(
        "somas health <id> / jq",
        f"{health['wall_ratio']:.1f}x wall, {health['cpu_ratio']:.1f}x CPU",
        "<= 3x jq",
        health["wall_ratio"] <= 3,
    )


# -- monitor and list over many projects -------------------------------------------------------


def bench_fleet(counts: list[int], runs: int) -> None:
    print("\noperator views over many projects vs one jq over all their state.json", flush=True)
    RESULTS["fleet"] = {}
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="somas-ratios-fleet-") as tmp:
            repo = Path(tmp)
            scaffold(repo)
            started = time.perf_counter()
            with no_fsync():
                base.build_fleet(repo, count)
            built = time.perf_counter() - started
            script = (
                "jq -r '[.project_id,.status,.current_stage]|@tsv' .somas/projects/*/state.json"
            )
            anchor = ["sh", "-c", script]
            cli = [*SOMAS, "--repo", str(repo)]
            monitor = versus([*cli, "monitor"], anchor, runs, cwd=repo)
            listing = versus([*cli, "list"], anchor, runs, cwd=repo)
        RESULTS["fleet"][count] = {"generated_s": built, "monitor": monitor, "list": listing}
        row(
            f"somas monitor, {count:,} projects / jq",
            f"{monitor['wall_ratio']:.2f}x wall",
            "<= 1.5x jq",
            monitor["wall_ratio"] <= 1.5,
        )
        row(
            f"somas list, {count:,} projects / jq",
            f"{listing['wall_ratio']:.2f}x wall",
            "<= 1.5x jq",
            listing["wall_ratio"] <= 1.5,
        )


# -- reconstruct a long log --------------------------------------------------------------------

_RECONSTRUCT = """
import sys
from pathlib import Path
from somas_action.state.store import ProjectStore
ProjectStore(Path(sys.argv[1]), "project-1").reconstruct_text()
"""
# What a person would write without any of the log's guarantees: decode each line, keep nothing.
_NAIVE_FOLD = """
import json, sys
state = {}
with open(sys.argv[1], encoding="utf-8") as log:
    for line in log:
        event = json.loads(line)
        state[event["event_type"]] = event["seq"]
"""


def bench_reconstruct(sizes: list[int], runs: int) -> None:
    print("\nreconstruct a long log vs jq and a naive per-line fold", flush=True)
    RESULTS["reconstruct"] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="somas-ratios-log-") as tmp:
            repo = Path(tmp)
            scaffold(repo)
            with no_fsync():
                state = base.ProjectBuilder(repo).build_log(n)
            log = repo / ".somas/projects/project-1/transitions.jsonl"
            ours = [sys.executable, "-c", _RECONSTRUCT, str(repo)]
            jq = [
                "jq",
                "-s",
                "group_by(.stage) | map({stage: .[0].stage, events: length})",
                str(log),
            ]
            naive = [sys.executable, "-c", _NAIVE_FOLD, str(log)]
            vs_jq = versus(ours, jq, runs)
            vs_naive = versus(ours, naive, runs)
            size_mb = log.stat().st_size / 1e6
            del state
        RESULTS["reconstruct"][n] = {"log_mb": size_mb, "vs_jq": vs_jq, "vs_naive": vs_naive}
        row(
            f"reconstruct {n:,} events ({size_mb:.0f} MB) / jq",
            f"{vs_jq['cpu_ratio']:.2f}x CPU",
            "<= 0.3x jq",
            vs_jq["cpu_ratio"] <= 0.3,
        )
        row(
            f"reconstruct {n:,} events / naive fold",
            f"{vs_naive['cpu_ratio']:.2f}x CPU",
            "<= 1.0x",
            vs_naive["cpu_ratio"] <= 1.0,
        )
        row(
            f"reconstruct {n:,} events, peak memory",
            f"{vs_jq['ours_peak_mib']:.0f} MiB (jq {vs_jq['anchor_peak_mib']:.0f})",
            "<= 100 MiB",
            vs_jq["ours_peak_mib"] <= 100,
        )


# -- appending stays flat ------------------------------------------------------------------------


def bench_append(sizes: list[int], commits: int) -> None:
    print("\nappend one event (store.commit, fsync on) at different log sizes", flush=True)
    medians: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="somas-ratios-append-") as tmp:
        for n in sizes:
            repo = Path(tmp) / f"log-{n}"
            repo.mkdir()
            scaffold(repo)
            builder = base.ProjectBuilder(repo)
            with no_fsync():
                state = builder.build_log(n)
            medians[n] = statistics.median(base.commit_times(builder, commits))
            del state
    smallest = medians[sizes[0]]
    RESULTS["append"] = {
        str(n): {"median_us": m * 1e6, "ratio": m / smallest} for n, m in medians.items()
    }
    ratios = " / ".join(f"{medians[n] / smallest:.2f}" for n in sizes)
    labels = " vs ".join(f"{n:,}" for n in sizes)
    row(
        f"append at {labels} events",
        ratios,
        "flat (< 1.5)",
        max(m / smallest for m in medians.values()) < 1.5,
    )


# -- GitHub writes of the seven-stage pipeline ---------------------------------------------------


def bench_github_writes() -> None:
    print(
        "\nGitHub requests of one pipeline (label -> gate -> approve -> done), fake GitHub",
        flush=True,
    )
    from bench import github_requests

    with tempfile.TemporaryDirectory(prefix="somas-ratios-github-") as tmp:
        figures = github_requests.run(Path(tmp))
    RESULTS["github"] = figures
    writes = sum(n for kind, n in figures["by_kind"].items() if not kind.startswith("GET"))
    reads = sum(n for kind, n in figures["by_kind"].items() if kind.startswith("GET"))
    RESULTS["github"]["writes"], RESULTS["github"]["reads"] = writes, reads
    row(
        "GitHub writes, 7-stage pipeline", f"{writes} writes + {reads} reads", "<= 20", writes <= 20
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args()
    start_launcher()
    compileall.compile_dir(str(ROOT / "somas_action"), quiet=1)
    runs = 5 if args.quick else 9
    print(
        f"somas {somas_action.__version__}: issue 14's figures, ratios against anchors in this run"
    )
    sections: list[Callable[[], None]] = [
        lambda: bench_github_writes(),
        lambda: bench_one_project(runs),
        lambda: bench_fleet([1_000] if args.quick else [100, 1_000, 10_000], runs),
        lambda: bench_reconstruct([100_000] if args.quick else [100_000, 1_000_000], 3),
        lambda: bench_append([10, 100_000] if args.quick else [10, 100_000, 1_000_000], 50),
    ]
    for section in sections:
        section()
    print("RATIOS-JSON " + json.dumps(RESULTS, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
