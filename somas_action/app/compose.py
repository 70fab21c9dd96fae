"""Builds the runner for a repository from its config: the embedded default adapters."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from somas_action.config.actor import default_actor
from somas_action.config.loader import config_path, load_config, parse_config
from somas_action.core import names
from somas_action.core.clock import Clock, SystemClock
from somas_action.core.domain import Event, State
from somas_action.core.errors import ConfigError
from somas_action.core.outbox import NoticePolicy, owed_drafts
from somas_action.core.ports import AgentProvider, Tracker
from somas_action.core.settings import Config
from somas_action.core.tool_events import TOOL_LOOP_EVENTS, tool_loop_detail
from somas_action.github import actions_runtime
from somas_action.pipeline.recorder import BatchSink
from somas_action.pipeline.runner import Runner, Services
from somas_action.pipeline.watch import WatchedClock
from somas_action.providers.live import LiveProvider
from somas_action.providers.recorded import RecordedProvider, resolve_recording
from somas_action.state.folder_commits import committer
from somas_action.state.local_tracker import LocalTracker


def progress_printer(clock: Clock, out: TextIO | None = None) -> Callable[[Event], None]:
    """One line per event, with the time since the printer was made."""
    started = clock.monotonic()

    def show(event: Event) -> None:
        elapsed = clock.monotonic() - started
        stage = event["stage"] or "-"
        attempt = f" attempt {event['attempt']}" if event["attempt"] else ""
        detail = ""
        data = event["data"]
        if "error" in data and event["event_type"] == "stage_attempt_failed":
            detail = f"  {data['error']['kind']}: {data['error']['message']}"
        elif event["event_type"] == "checkpoint_created":
            detail = f"  {data['checkpoint_id']}"
        what = f"{event['event_type']:<23} {event['status']}{attempt}{detail}"
        if event["event_type"] in TOOL_LOOP_EVENTS:  # the agent's own steps, told plainly
            what = tool_loop_detail(event)
        line = f"  +{elapsed:6.2f}s #{event['seq']:<4} {stage:<14} {what}"
        # One line per event, at most 80 columns: details are cut, not wrapped.
        print(line if len(line) <= 80 else line[:77] + "...", file=out or sys.stdout, flush=True)

    return show


def build_runner(
    repo: Path,
    *,
    clock: Clock | None = None,
    on_event: Callable[[Event], None] | None = None,
    recording: str | None = None,
    commit_state: bool | None = None,
    tracker: Tracker | None = None,
    after_commit: BatchSink | None = None,
    base_branch: str = names.DEFAULT_BASE_BRANCH,
    config: Config | None = None,
    notices: NoticePolicy | None = None,
) -> Runner:
    """A runner over the provider named by the config and a tracker (default: local files).

    Each committed batch goes to `after_commit` (e.g. the state branch), to a git commit on
    the current branch with `commit_state` (default: `$SOMAS_COMMIT_STATE` is `1`), and, in
    GitHub Actions, to the step outputs and job summary. With `notices`, every batch records
    the comments it owes the issue (the notification outbox; the caller says them).
    """
    config = config or load_config(repo)
    clock = WatchedClock(clock or SystemClock())
    provider: AgentProvider
    if config.agent_provider.type == "live" and recording is None:
        provider = LiveProvider(repo, config, clock, actor=default_actor())
    else:
        spec = recording or config.agent_provider.recording
        provider = RecordedProvider(
            resolve_recording(repo, spec), repo, clock, config.error_handling.circuit_breaker
        )
    services = Services(
        repo=repo,
        config=config,
        provider=provider,
        tracker=tracker or LocalTracker(repo),
        clock=clock,
        on_event=on_event or (lambda event: None),
        run_budget_seconds=run_budget_seconds(config),
        base_branch=base_branch,
        lease_wait_seconds=config.state.lease_wait_seconds,
    )
    hooks: list[BatchSink] = [after_commit] if after_commit else []
    if commit_state if commit_state is not None else os.environ.get("SOMAS_COMMIT_STATE") == "1":
        hooks.append(committer(repo))
    if actions_runtime.active():
        hooks.append(actions_runtime.remember)
    if hooks:

        def on_commit(state: State, events: list[Event]) -> None:
            for hook in hooks:
                hook(state, events)

        services.on_commit = on_commit
    runner = Runner(services)
    if notices is not None:
        runner.recorder.owe = lambda drafts: owed_drafts(notices, drafts)
    return runner


def cli_runner(
    repo: Path, collect: list[Event] | None = None, tolerate_broken_config: bool = False
) -> Runner:
    """The runner of a `somas` command: the real clock; events printed a line each, or collected.

    `tolerate_broken_config`: a config.yml that does not load is replaced by the defaults (the
    emergency stop's pauses need none of its settings).
    """
    clock = SystemClock()
    sink = collect.append if collect is not None else progress_printer(clock)
    config = None
    if tolerate_broken_config:
        try:
            config = load_config(repo)
        except ConfigError:
            config = parse_config({}, config_path(repo))
    return build_runner(repo, clock=clock, on_event=sink, config=config)


def run_budget_seconds(config: Config) -> float | None:
    """How long one run may work: `$SOMAS_RUN_BUDGET_SECONDS`, else the config (None: no limit)."""
    explicit = os.environ.get("SOMAS_RUN_BUDGET_SECONDS")
    if explicit:
        try:
            value = float(explicit)
        except ValueError:
            value = -1.0
        if value <= 0:
            raise ConfigError(
                f"SOMAS_RUN_BUDGET_SECONDS: {explicit!r} is not a positive number of seconds"
            )
        return value
    return config.error_handling.run_budget_seconds


def tracker_for(repo: Path, config: Config, clock: Clock) -> Tracker:
    """GitHub's issues inside Actions (GITHUB_REPOSITORY set), else the local file tracker."""
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_REPOSITORY"):
        from somas_action.github.api import GitHubApi, GitHubSettings
        from somas_action.github.breaker_guard import github_guard
        from somas_action.github.tracker import GitHubTracker

        settings = GitHubSettings.from_env(os.environ, config.github)
        return GitHubTracker(GitHubApi(settings, clock, github_guard(repo, config, clock)))
    return LocalTracker(repo)
