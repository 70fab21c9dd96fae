"""Benchmarks of the somas_action engine (stdlib only).

Run from the repository root:

    .venv/bin/python bench/run.py            # full run, ~30-60 s on 2 cores
    .venv/bin/python bench/run.py --quick    # fewer repetitions and a 20k-event log

Everything is created in temporary folders (honours $TMPDIR) and removed afterwards.
The last line is `BENCH-JSON {...}` with every figure, for copying into notes.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from somas_action.app.compose import build_runner
from somas_action.cli.commands.demo import prepare_repo
from somas_action.cli.commands.init import scaffold
from somas_action.config.loader import load_agent, load_config
from somas_action.core import engine, names, projection
from somas_action.core.clock import SystemClock, format_ts
from somas_action.core.domain import ErrorRecord, EventDraft, IssueSnapshot, Replay, State
from somas_action.core.engine import Context
from somas_action.core.settings import Config, StageConfig
from somas_action.pipeline import validation_stage
from somas_action.providers.recorded import RecordedProvider, resolve_recording
from somas_action.state.eventlog import EMPTY_TAIL
from somas_action.state.jsonio import atomic_write_text
from somas_action.state.local_tracker import LocalTracker
from somas_action.state.store import ProjectStore

PROJECT_ID = "project-1"
BOT = "local:somas-bench"
RESULTS: dict[str, Any] = {}
FLAT_RATIO = 1.5  # large/small ratio under which a per-operation cost counts as flat


# -- helpers -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<50} {value:>12}   {note}".rstrip(), flush=True)


def section(title: str) -> None:
    print(f"\n{title}", flush=True)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Seconds of each of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        result = None  # free the previous result first: a live 100k-event list slows the GC
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def fs_type(path: Path) -> str:
    """Filesystem type of `path` (fsync cost depends on it); Linux only, else 'unknown'."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    target = str(path.resolve())
    for entry in mounts:
        parts = entry.split()
        if len(parts) < 3 or len(parts[1]) <= len(best):
            continue
        if target == parts[1] or target.startswith(parts[1].rstrip("/") + "/"):
            best, kind = parts[1], parts[2]
    return kind


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


@contextmanager
def tempdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp).resolve()


# -- 1. a full demo run --------------------------------------------------------------------


class Probe:
    """Wraps the runner's workspace and os.fsync to split a run's time (no behaviour change)."""

    def __init__(self) -> None:
        self.tests = 0.0
        self.test_runs = 0
        self.git = 0.0
        self.git_calls = 0
        self.fsync = 0.0
        self.fsync_calls = 0
        self._in_tests = False

    def wrap_tests(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run_tests(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._in_tests = True
            try:
                return fn(*args, **kwargs)
            finally:
                self._in_tests = False
                self.tests += time.perf_counter() - start
                self.test_runs += 1

        return run_tests

    def wrap_git(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def git(*args: Any, **kwargs: Any) -> Any:
            if self._in_tests:  # rev-parse inside run_tests is already counted as tests
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.git += time.perf_counter() - start
                self.git_calls += 1

        return git

    @contextmanager
    def fsyncs(self) -> Iterator[None]:
        original = os.fsync

        def fsync(fd: Any) -> None:
            start = time.perf_counter()
            try:
                original(fd)
            finally:
                if not self._in_tests:
                    self.fsync += time.perf_counter() - start
                    self.fsync_calls += 1

        os.fsync = fsync
        try:
            yield
        finally:
            os.fsync = original


def demo_run(folder: Path) -> dict[str, Any]:
    """One seven-stage run as `somas demo` does it; the engine part is timed."""
    prepare_repo(folder)
    config = load_config(folder)
    issue_text = RecordedProvider(
        resolve_recording(folder, config.agent_provider.recording)
    ).issue()
    issue = LocalTracker(folder).create_issue(
        issue_text["title"], issue_text["body"], [names.PROJECT_LABEL]
    )
    probe = Probe()
    suite_runs = validation_stage.validate_branch
    # The repository's suite in the sandbox (the implementer's run_tests and the validation
    # stage, each on the base and the branch): timed as tests, not as engine.
    validation_stage.validate_branch = probe.wrap_tests(suite_runs)  # type: ignore[assignment]
    try:
        with probe.fsyncs():
            start = time.perf_counter()
            runner = build_runner(folder, clock=SystemClock())
            runner.workspace.git = probe.wrap_git(runner.workspace.git)  # type: ignore[method-assign]
            state = runner.start(issue.number, BOT)
            state, _ = runner.advance(state["project_id"], BOT)
            if state["status"] != names.WAITING:
                raise RuntimeError(f"demo stopped at {state['current_stage']} ({state['status']})")
            runner.approve(state["project_id"], BOT)
            state, _ = runner.advance(state["project_id"], BOT)
            total = time.perf_counter() - start
    finally:
        validation_stage.validate_branch = suite_runs  # type: ignore[assignment]
    if state["status"] != names.COMPLETED or state["metrics"]["failed_attempts"]:
        # A failed attempt would add a real backoff sleep to the "overhead".
        raise RuntimeError(f"demo did not complete cleanly: {state['status']} {state['metrics']}")
    if probe.test_runs != 2:  # the implementer's run_tests, then the validation stage
        raise RuntimeError(f"expected two suite runs, saw {probe.test_runs}")
    events = count_lines(ProjectStore(folder, state["project_id"]).log.path)
    return {
        "total_s": total,
        "tests_s": probe.tests,
        "overhead_s": total - probe.tests,
        "events": events,
        "git_s": probe.git,
        "git_calls": probe.git_calls,
        "fsync_s": probe.fsync,
        "fsync_calls": probe.fsync_calls,
    }


def bench_demo(runs: int) -> None:
    section(f"1. full seven-stage demo run (engine only; median of {runs} runs after 1 warm-up)")
    samples = []
    with tempdir("somas-bench-demo-") as tmp:
        first = demo_run(tmp / "warmup")
        for index in range(runs):
            samples.append(demo_run(tmp / f"run{index}"))
    med = {key: median([s[key] for s in samples]) for key in samples[0]}
    per_event = med["overhead_s"] / med["events"]
    RESULTS["demo"] = {
        "runs": runs,
        "total_s": med["total_s"],
        "tests_s": med["tests_s"],
        "overhead_s": med["overhead_s"],
        "events": int(med["events"]),
        "overhead_per_event_ms": per_event * 1000,
        "git_outside_tests_s": med["git_s"],
        "git_calls_outside_tests": int(med["git_calls"]),
        "fsync_s": med["fsync_s"],
        "fsync_calls": int(med["fsync_calls"]),
        "first_run_in_process_total_s": first["total_s"],
        "first_run_in_process_overhead_s": first["overhead_s"],
        "samples_overhead_s": [s["overhead_s"] for s in samples],
    }
    line("demo run total", f"{med['total_s'] * 1000:.0f} ms")
    line(
        "  inside the sandboxed suite runs",
        f"{med['tests_s'] * 1000:.0f} ms",
        "(run_tests and validation, base and branch)",
    )
    line(
        "  engine overhead (total - tests)",
        f"{med['overhead_s'] * 1000:.0f} ms",
        f"(min {min(s['overhead_s'] for s in samples) * 1000:.0f}, "
        f"max {max(s['overhead_s'] for s in samples) * 1000:.0f})",
    )
    line(
        "    of which git subprocesses",
        f"{med['git_s'] * 1000:.0f} ms",
        f"({int(med['git_calls'])} calls)",
    )
    line(
        "    of which os.fsync",
        f"{med['fsync_s'] * 1000:.0f} ms",
        f"({int(med['fsync_calls'])} calls)",
    )
    line("  events in transitions.jsonl", f"{int(med['events'])}")
    line("  overhead per event", f"{per_event * 1000:.2f} ms")
    line(
        "first run in this process (cold caches)",
        f"{first['total_s'] * 1000:.0f} ms",
        f"(overhead {first['overhead_s'] * 1000:.0f} ms)",
    )


# -- 2. CLI cold start ---------------------------------------------------------------------


def run_cmd(argv: list[str], runs: int, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    """Wall seconds of each run; exit codes outside `ok_codes` (monitor's 1/2 are answers) fail."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok_codes:
            raise RuntimeError(f"{argv[3:]} exited {done.returncode}: {done.stderr.decode()}")
    return times


def bench_status(runs: int) -> None:
    section(f"2. `somas status` cold start (separate process; median of {runs})")
    with tempdir("somas-bench-status-") as tmp:
        folder = tmp / "repo"
        demo_run(folder)
        status = [sys.executable, "-m", "somas_action", "--repo", str(folder), "status", PROJECT_ID]
        run_cmd(status, 1)  # warm the page cache and __pycache__
        t_status = run_cmd(status, runs)
        t_import = run_cmd([sys.executable, "-c", "import somas_action.cli.main"], runs)
        t_import_status = run_cmd(
            [sys.executable, "-c", "import somas_action.cli.commands.status"], runs
        )
        t_pass = run_cmd([sys.executable, "-c", "pass"], runs)
    RESULTS["status_cold_start"] = {
        "runs": runs,
        "status_s": median(t_status),
        "import_main_s": median(t_import),
        "import_status_module_s": median(t_import_status),
        "python_pass_s": median(t_pass),
    }
    line("somas status project-1 (demo repo)", f"{median(t_status) * 1000:.0f} ms")
    line(
        "  python -c 'import somas_action.cli.main'",
        f"{median(t_import) * 1000:.0f} ms",
        "(what the CLI imports)",
    )
    line(
        "  python -c 'import somas_action.cli.commands.status'",
        f"{median(t_import_status) * 1000:.0f} ms",
        "(what status needs)",
    )
    line("  python -c pass (baseline)", f"{median(t_pass) * 1000:.0f} ms")


# -- 3. a large log ------------------------------------------------------------------------


def failure_cycle_drafts(
    state: State,
    stage: StageConfig,
    model: dict[str, str] | None,
    attempt: int,
    events_so_far: int,
    ts: str,
) -> list[EventDraft]:
    """stage_started, agent_invoked, stage_attempt_failed: one failed attempt, as the runner
    makes it (same engine functions, same command ids)."""
    start = engine.start_attempt(
        state, stage, attempt, model, Context(BOT, ts, f"advance:{events_so_far}")
    )
    error: ErrorRecord = {
        "kind": "invalid_output",
        "message": (
            f"agent {stage.agent} reply: requirements: [] should be non-empty "
            f"(attempt {attempt}; the issue body mentions slugs, unicode and page URLs)"
        ),
    }
    replay: Replay = {"agent": stage.agent, "model": model, "inputs": {}}
    fail = engine.fail_attempt(
        state, stage, attempt, error, replay, Context(BOT, ts, f"advance:{events_so_far + 2}")
    )
    return start + fail


class ProjectBuilder:
    """Makes a realistic project log: created, then one stage failing attempt after attempt.

    The stage's max_retries is raised so the engine never emits stage_failed (the fold does
    not check limits, so the log folds like any other).
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.config: Config = load_config(repo)
        first = self.config.stages[0]
        self.stage = dataclasses.replace(first, max_retries=10**9)
        model = load_agent(repo, first.agent).model
        self.model = model.as_dict() if model else None
        self.store = ProjectStore(repo, PROJECT_ID)
        self.t0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        self.attempt = 0

    def ts(self, seconds: int) -> str:
        return format_ts(self.t0 + timedelta(seconds=seconds, milliseconds=seconds % 997))

    def created(self) -> list[EventDraft]:
        issue: IssueSnapshot = {
            "number": 1,
            "title": "Add a slugify helper for page URLs",
            "body": "Pages need URL slugs. " * 20,
            "url": "local:1",
        }
        return engine.create_project(
            PROJECT_ID, issue, self.config, Context(BOT, self.ts(0), "start:1")
        )

    def cycle(self, state: State) -> list[EventDraft]:
        self.attempt += 1
        return failure_cycle_drafts(
            state,
            self.stage,
            self.model,
            self.attempt,
            state["metrics"]["events"],
            self.ts(self.attempt * 7),
        )

    def build_log(self, n_events: int, batch: int = 999) -> State:
        """Append `n_events` events straight to the log in batches; return the folded state."""
        written, tail = self.store.log.append(self.created(), EMPTY_TAIL)
        state = projection.fold(written)
        pending: list[EventDraft] = []
        count = 1
        while count < n_events:
            drafts = self.cycle(state)[: n_events - count]
            count += len(drafts)
            pending += drafts
            # The engine only reads project_id/current_stage/metrics.events from `state`.
            state["metrics"]["events"] = count
            if len(pending) >= batch or count >= n_events:
                written, tail = self.store.log.append(pending, tail)
                for event in written:
                    projection.apply(state, event)
                pending = []
        projection.stamp_log(state, tail.offset, tail.crc32)
        atomic_write_text(self.store.state_path, projection.render(state))
        return state


def bench_reconstruct(repo: Path, n_events: int, repeat: int) -> None:
    label = f"{n_events // 1000}k" if n_events % 1000 == 0 else str(n_events)
    section(f"3. reconstruct a {n_events:,}-event log (median of {repeat})")
    builder = ProjectBuilder(repo)
    start = time.perf_counter()
    state = builder.build_log(n_events)
    build_s = time.perf_counter() - start
    store = builder.store
    size_mb = store.log.path.stat().st_size / 1e6
    if count_lines(store.log.path) != n_events:
        raise RuntimeError("log has the wrong number of events")

    t_recon, text = timed(store.reconstruct_text, repeat)
    if text != projection.render(state):
        raise RuntimeError("reconstruct_text differs from the incrementally built state")
    t_read, events = timed(store.log.read, repeat)
    t_fold, folded = timed(lambda: projection.fold(events), repeat)
    t_render, _ = timed(lambda: projection.render(folded), repeat)
    events = folded = None  # free the 100k events before the next measurement
    t_status = run_cmd(
        [sys.executable, "-m", "somas_action", "--repo", str(repo), "status", PROJECT_ID], 3
    )
    RESULTS["reconstruct"] = {
        "events": n_events,
        "log_mb": size_mb,
        "bytes_per_event": store.log.path.stat().st_size / n_events,
        "generate_s": build_s,
        "reconstruct_text_s": median(t_recon),
        "reconstruct_text_min_s": min(t_recon),
        "reconstruct_text_max_s": max(t_recon),
        "log_read_s": median(t_read),
        "fold_s": median(t_fold),
        "render_s": median(t_render),
        "status_cli_s": median(t_status),
        "target_s": 1.0,
    }
    if n_events == 100_000:
        verdict = "target < 1 s: " + ("ok" if median(t_recon) < 1.0 else "MISSED") + "; "
    else:
        verdict = "the < 1 s target is for 100k events; "
    line(
        "log size",
        f"{size_mb:.1f} MB",
        f"({size_mb * 1e6 / n_events:.0f} B/event; generated in {build_s:.1f} s)",
    )
    line(
        f"reconstruct {label} events",
        f"{median(t_recon):.2f} s",
        f"({verdict}min {min(t_recon):.2f}, max {max(t_recon):.2f} s)",
    )
    line("  EventLog.read (read + verify chain)", f"{median(t_read):.2f} s")
    line("  projection.fold", f"{median(t_fold):.2f} s")
    line("  projection.render", f"{median(t_render) * 1000:.1f} ms")
    line(
        f"somas status at {label} events (CLI)",
        f"{median(t_status) * 1000:.0f} ms",
        "(state.json in step: no fold)",
    )


# -- 4. append and load cost vs log size ---------------------------------------------------


def commit_times(builder: ProjectBuilder, commits: int, warmup: int = 5) -> list[float]:
    """Seconds per `store.commit(state, [one draft])`, the full durable path."""
    store = builder.store
    state, changes = store.load()
    assert changes == []
    times: list[float] = []
    queue: list[EventDraft] = []
    for index in range(warmup + commits):
        if not queue:
            queue = builder.cycle(state)
        draft = queue.pop(0)
        start = time.perf_counter()
        state, _ = store.commit(state, [draft])
        elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return times


def load_times(repo: Path, repeat: int) -> list[float]:
    def cold_load() -> None:
        _, changes = ProjectStore(repo, PROJECT_ID).load()
        assert changes == []

    return timed(cold_load, repeat)[0]


def tail_times(repo: Path, repeat: int) -> list[float]:
    log = ProjectStore(repo, PROJECT_ID).log
    return timed(log.end, repeat)[0]


def bench_append(small: Path, large: Path, large_builder_events: int, commits: int) -> None:
    section(f"4. cost per operation vs log size ({commits} single-event commits each)")
    small_builder = ProjectBuilder(small)
    small_builder.build_log(10)
    large_builder = ProjectBuilder(large)
    # Continue the large log where bench_reconstruct left it.
    large_builder.attempt = (large_builder_events - 1) // 3
    figures: dict[str, dict[str, float]] = {}
    for name, repo, builder in (("small", small, small_builder), ("large", large, large_builder)):
        before = count_lines(builder.store.log.path)
        t_commit = commit_times(builder, commits)
        t_load = load_times(repo, 50)
        t_tail = tail_times(repo, 2000)
        figures[name] = {
            "events_before": before,
            "commit_median_us": median(t_commit) * 1e6,
            "commit_p95_us": p95(t_commit) * 1e6,
            "load_median_us": median(t_load) * 1e6,
            "tail_median_us": median(t_tail) * 1e6,
        }
    small_n, large_n = (
        int(figures["small"]["events_before"]),
        int(figures["large"]["events_before"]),
    )
    RESULTS["append"] = {"commits": commits, **figures}
    for key, title in (
        ("commit_median_us", "store.commit, 1 event, median"),
        ("commit_p95_us", "store.commit, 1 event, p95"),
        ("load_median_us", "cold store.load(), median"),
        ("tail_median_us", "EventLog.end(), median"),
    ):
        s, g = figures["small"][key], figures["large"][key]
        ratio = g / s if s else float("nan")
        RESULTS["append"][key.replace("_us", "_ratio")] = ratio
        flat = "flat" if ratio < FLAT_RATIO else "NOT FLAT"
        line(f"{title} @ {small_n} ev", f"{s:,.0f} us")
        line(f"{title} @ {large_n:,} ev", f"{g:,.0f} us", f"(x{ratio:.2f} vs small: {flat})")
    RESULTS["append"]["flat"] = all(
        RESULTS["append"][k] < FLAT_RATIO
        for k in ("commit_median_ratio", "load_median_ratio", "tail_median_ratio")
    )
    RESULTS["append"]["flat_threshold_ratio"] = FLAT_RATIO


# -- main ----------------------------------------------------------------------------------


def build_fleet(repo: Path, count: int) -> None:
    """`count` projects in mixed states, written through the real engine and store."""
    config = load_config(repo)
    stages = config.stages
    letters_replay: Replay = {"agent": "x", "model": None, "inputs": {"issue": {}}}
    clock = SystemClock()
    for number in range(1, count + 1):
        pid = names.project_id_for(number)
        store = ProjectStore(repo, pid)
        ts = format_ts(clock.now() - timedelta(hours=number % 100))
        issue: IssueSnapshot = {
            "number": number,
            "title": f"Project {number}",
            "body": "b",
            "url": "",
        }
        drafts = engine.create_project(pid, issue, config, Context(BOT, ts, f"start:{number}"))
        state, _ = store.commit(None, drafts)
        done = number % 5  # 0..4 stages completed
        for stage in stages[:done]:
            ctx = Context(BOT, ts, f"advance:{state['metrics']['events']}")
            state, _ = store.commit(state, engine.start_attempt(state, stage, 1, None, ctx))
            ctx = Context(BOT, ts, f"advance:{state['metrics']['events']}")
            drafts = engine.finish_attempt(
                state, config, stage, 1, output_digest="d", artifacts=[], gate_results=[], ctx=ctx
            )
            state, _ = store.commit(state, drafts)
        if number % 7 == 0:  # every 7th project failed its current stage
            stage = stages[done]
            for attempt in range(1, stage.max_retries + 1):
                ctx = Context(BOT, ts, f"advance:{state['metrics']['events']}")
                drafts = engine.start_attempt(state, stage, attempt, None, ctx)
                drafts += engine.fail_attempt(
                    state,
                    stage,
                    attempt,
                    {"kind": "timeout", "message": "t"},
                    letters_replay,
                    Context(BOT, ts, f"advance:{state['metrics']['events'] + 2}"),
                )
                state, _ = store.commit(state, drafts)


def bench_fleet(count: int, runs: int) -> None:
    section(f"5. operator views over {count:,} projects (separate process; median of {runs})")
    with tempdir("somas-bench-fleet-") as repo:
        scaffold(repo)
        started = time.perf_counter()
        build_fleet(repo, count)
        build_s = time.perf_counter() - started
        cli = [sys.executable, "-m", "somas_action", "--repo", str(repo)]
        answers = (0, 1, 2)  # ok / warning / critical are all answers
        t_monitor = run_cmd([*cli, "monitor"], runs, answers)
        t_list = run_cmd([*cli, "list"], runs)
        t_health = run_cmd([*cli, "health", "project-7"], runs, answers)
        t_health_big = run_cmd([*cli, "health", "project-4"], runs, answers)
    RESULTS["fleet"] = {
        "projects": count,
        "generate_s": build_s,
        "monitor_s": median(t_monitor),
        "list_s": median(t_list),
        "health_s": median(t_health),
        "health_other_s": median(t_health_big),
        "monitor_target_s": 1.0,
        "health_target_s": 0.2,
    }
    ok = "ok" if median(t_monitor) < 1.0 else "MISSED"
    line("fleet generated", f"{build_s:.1f} s", "(through engine + store, fsync per commit)")
    line(
        f"somas monitor, {count:,} projects",
        f"{median(t_monitor) * 1000:.0f} ms",
        f"(target < 1 s: {ok})",
    )
    line(f"somas list, {count:,} projects", f"{median(t_list) * 1000:.0f} ms")
    ok = "ok" if max(median(t_health), median(t_health_big)) < 0.2 else "MISSED"
    line(
        "somas health project-7 (failed)",
        f"{median(t_health) * 1000:.0f} ms",
        f"(target < 200 ms: {ok})",
    )
    line("somas health project-4 (in progress)", f"{median(t_health_big) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 20k events")
    parser.add_argument("--events", type=int, help="events in the large log (default 100000)")
    args = parser.parse_args()
    n_events = args.events or (20_000 if args.quick else 100_000)
    demo_runs, status_runs, recon_repeat, commits = (3, 5, 2, 50) if args.quick else (5, 10, 3, 200)

    started = time.perf_counter()
    tmp_root = Path(tempfile.gettempdir())
    RESULTS["env"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "tmpdir": str(tmp_root),
        "tmp_fs": fs_type(tmp_root),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(
        f"somas_action benchmarks - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, temp dir {tmp_root} ({RESULTS['env']['tmp_fs']})"
    )

    bench_demo(demo_runs)
    bench_status(status_runs)
    with tempdir("somas-bench-log-") as tmp:
        large, small = tmp / "large", tmp / "small"
        for repo in (large, small):
            repo.mkdir()
            scaffold(repo)
        bench_reconstruct(large, n_events, recon_repeat)
        bench_append(small, large, n_events, commits)
    bench_fleet(1000, 3 if args.quick else 5)

    RESULTS["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {RESULTS['wall_s']:.1f} s")
    print("BENCH-JSON " + json.dumps(RESULTS, sort_keys=True, default=float, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
