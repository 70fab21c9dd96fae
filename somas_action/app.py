"""Builds the runner for a repository from its config: the embedded default adapters."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from somas_action.adapters.local_tracker import LocalTracker
from somas_action.adapters.recorded_provider import RecordedProvider, resolve_recording
from somas_action.clock import Clock, SystemClock
from somas_action.config import load_config
from somas_action.ports import Tracker
from somas_action.runner import BatchSink, Runner, Services


def default_actor() -> str:
    """Who is acting: `$SOMAS_ACTOR`, else `local:<login name>`."""
    explicit = os.environ.get("SOMAS_ACTOR")
    if explicit:
        return explicit
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


def progress_printer(clock: Clock, out: TextIO | None = None) -> Callable[[dict[str, Any]], None]:
    """One line per event, with the time since the printer was made."""
    started = clock.monotonic()

    def show(event: dict[str, Any]) -> None:
        elapsed = clock.monotonic() - started
        stage = event["stage"] or "-"
        attempt = f" attempt {event['attempt']}" if event["attempt"] else ""
        detail = ""
        data = event["data"]
        if "error" in data and event["event_type"] == "stage_attempt_failed":
            detail = f"  {data['error']['kind']}: {data['error']['message'][:120]}"
        elif event["event_type"] == "checkpoint_created":
            detail = f"  {data['checkpoint_id']}"
        print(
            f"  +{elapsed:7.2f}s  #{event['seq']:<4} {stage:<15} {event['event_type']:<24} "
            f"{event['status']}{attempt}{detail}",
            file=out or sys.stdout,
            flush=True,
        )

    return show


def build_runner(
    repo: Path,
    *,
    clock: Clock | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    recording: str | None = None,
    tracker: Tracker | None = None,
    after_commit: BatchSink | None = None,
    base_branch: str = "main",
) -> Runner:
    """A runner over the provider named by the config and a tracker (default: local files)."""
    config = load_config(repo)
    clock = clock or SystemClock()
    spec = recording or config.raw["agent_provider"]["recording"]
    provider = RecordedProvider(resolve_recording(repo, spec))
    services = Services(
        repo=repo,
        config=config,
        provider=provider,
        tracker=tracker or LocalTracker(repo),
        clock=clock,
        on_event=on_event or (lambda event: None),
        base_branch=base_branch,
        after_commit=after_commit or (lambda state, written: None),
    )
    return Runner(services)
