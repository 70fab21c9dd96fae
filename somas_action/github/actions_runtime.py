"""Everything SOMAS says to the GitHub Actions runner, in one place.

The runner reads files and stdout lines: `$GITHUB_OUTPUT` (step outputs), `$GITHUB_STEP_SUMMARY`
(the job summary, Markdown), and workflow commands such as `::error::` and `::add-mask::`. The
library never writes these directly; it calls the functions here, which do nothing outside
Actions (no `$GITHUB_ACTIONS`), so local runs and tests stay clean.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from somas_action.core.domain import Event, State
from somas_action.core.report import status_markdown
from somas_action.core.untrusted import scrub


def active(environ: dict[str, str] | None = None) -> bool:
    """Whether we run inside a GitHub Actions step."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    # The runner's own escaping for workflow-command data.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# While untrusted text is being printed, the runner ignores commands: ours wait until after.
_held: list[str] = []
_stopped: list[str] = []


def _command(name: str, message: str, **props: str) -> None:
    attrs = ",".join(f"{k}={_escape_property(v)}" for k, v in props.items() if v)
    line = f"::{name}{' ' + attrs if attrs else ''}::{_escape_data(message)}"
    if _stopped:
        _held.append(line)
    else:
        print(line, flush=True)


def error(message: str, title: str = "SOMAS", file: str = "") -> None:
    """An error annotation on the run (shown on the summary page)."""
    if active():
        _command("error", message, title=title, file=file)


def warning(message: str, title: str = "SOMAS") -> None:
    """A warning annotation."""
    if active():
        _command("warning", message, title=title)


def mask(value: str) -> None:
    """Ask the runner to hide `value` in all later log output."""
    if active() and value:
        for line in value.splitlines():
            if line.strip():
                _command("add-mask", line)


@contextmanager
def untrusted_output() -> Iterator[None]:
    """Print untrusted text (issue bodies, agent replies) with workflow commands disabled.

    Between `::stop-commands::<token>` and `::<token>::` the runner ignores `::` commands, so
    text like `::set-output` or `::add-mask` inside an issue cannot act on the run.
    """
    if not active() or _stopped:
        yield
        return
    token = os.urandom(16).hex()
    print(f"::stop-commands::{token}", flush=True)
    _stopped.append(token)
    try:
        yield
    finally:
        _stopped.pop()
        print(f"::{token}::", flush=True)
        while _held:
            print(_held.pop(0), flush=True)


def set_outputs(values: dict[str, str]) -> None:
    """Append step outputs to `$GITHUB_OUTPUT`, each with a fresh random heredoc delimiter."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not (active() and path):
        return
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{os.urandom(16).hex()}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{os.urandom(16).hex()}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(markdown: str) -> None:
    """Append Markdown to the job summary."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if active() and path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")


_reported: dict[str, Any] = {}


def remember(state: State, events: list[Event]) -> None:
    """`on_commit` hook: keep the newest state of the run's project for `flush`."""
    _reported["state"] = state
    failures = [e for e in events if e["event_type"] in ("stage_failed", "stage_attempt_failed")]
    for event in failures:
        err = event["data"].get("error") or {}
        # Annotations show on the run's page: no runner paths, bounded, like any comment.
        error(
            f"{event['project_id']} {event['stage']} attempt {event['attempt']}: "
            f"{scrub(str(err.get('kind', 'error')), 60)}: {scrub(str(err.get('message', '')))}",
            title=f"SOMAS {event['event_type'].replace('_', ' ')}",
        )


def flush() -> None:
    """Write outputs and the job summary for the project this run touched (if any)."""
    state = _reported.pop("state", None)
    if state is None:
        return
    set_outputs(
        {
            "project_id": state["project_id"],
            "stage": state["current_stage"],
            "status": state["status"],
        }
    )
    append_summary(status_markdown(state))
