"""Artifacts have owners: SOMAS's files and each stage agent's files never share a name.

A project's `artifacts/` folder holds two kinds of files:

- SOMAS's own, directly in `artifacts/`: each stage's validated reply (`<stage>.output.json`),
  `implementation.json`, `test_results.json`, `validation_report.json`, the debugger's record.
  They are evidence (what ran, what passed), so nothing an agent says may replace them;
- what an agent supplies in its reply's `artifacts`, in its stage's own namespace,
  `artifacts/<stage>/<name>`. Agent names are plain file names (the reply schema's pattern: no
  `/`, no `..`), so a reply can write nowhere else;
- the full output of each tool call of an agent's tool loop, `artifacts/tool-calls/<conversation>/
  tool-NNN-<call>.txt` (SOMAS's: no stage name has a hyphen, so no agent namespace is there).

Every write is recorded with its digest in an `artifacts_written` event (name, path below
`artifacts/`, owner, bytes, sha256). `check_digests` compares the folder with the last digest
recorded for each path: a changed or missing file fails `somas verify`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from somas_action.core import names
from somas_action.core.domain import ArtifactRecord, Event, JsonObject
from somas_action.core.errors import StateError
from somas_action.core.events import EventType
from somas_action.state.jsonio import atomic_write_json, atomic_write_text
from somas_action.state.store import ProjectStore

SOMAS = "somas"
AGENT = "agent"
Content = str | JsonObject | list[Any]


def plain_name(name: str) -> str:
    """An artifact's file name, refused unless it names a plain, visible file."""
    if "/" in name or "\\" in name or not name or name.startswith("."):
        raise StateError(f"artifact name {name!r} must be a plain file name")
    return name


def agent_path(stage: str, name: str) -> str:
    """Where a stage agent's artifact lives, relative to `artifacts/`."""
    if not names.STAGE_NAME_RE.match(stage):
        raise StateError(f"stage {stage!r} is not a stage name")
    return f"{stage}/{plain_name(name)}"


def _write(store: ProjectStore, relative: str, content: Content) -> bytes:
    path = store.artifacts_dir / relative
    if isinstance(content, str):
        atomic_write_text(path, content if content.endswith("\n") else content + "\n")
    else:
        atomic_write_json(path, content)
    return path.read_bytes()


def _record(name: str, relative: str, owner: str, data: bytes) -> ArtifactRecord:
    digest = hashlib.sha256(data).hexdigest()
    return {"name": name, "path": relative, "owner": owner, "bytes": len(data), "sha256": digest}


def write_stage_artifacts(
    store: ProjectStore,
    stage: str,
    owned: Mapping[str, Content],
    supplied: Mapping[str, Content],
) -> list[ArtifactRecord]:
    """Write SOMAS's files for a stage, then the agent's in the stage's namespace; the records.

    `owned` are SOMAS's (plain names, in `artifacts/`); `supplied` is the reply's `artifacts`.
    """
    records: list[ArtifactRecord] = []
    for name, content in owned.items():
        relative = plain_name(name)
        records.append(_record(name, relative, SOMAS, _write(store, relative, content)))
    for name, content in supplied.items():
        relative = agent_path(stage, name)
        records.append(_record(name, relative, AGENT, _write(store, relative, content)))
    return records


def recorded_digests(events: list[Event]) -> dict[str, tuple[str | None, int]]:
    """path -> (sha256 or None when the event kept none, seq): the last record of each file."""
    found: dict[str, tuple[str | None, int]] = {}
    for event in events:
        data = event.get("data") or {}
        if event["event_type"] == EventType.ARTIFACTS_WRITTEN:
            for item in data.get("artifacts") or []:
                # Logs written before owners existed kept flat names and no `path`.
                found[str(item.get("path") or item["name"])] = (item.get("sha256"), event["seq"])
        elif event["event_type"] == EventType.DEBUGGER_FIX_COMMITTED and data.get("artifact"):
            found[str(data["artifact"])] = (data.get("sha256"), event["seq"])
        elif event["event_type"] == EventType.AGENT_TOOL_CALLED:
            # A tool call's full output: the event's digest is the file's.
            found[str(data["artifact"])] = (data["sha256"], event["seq"])
    return found


def _on_disk(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        # A crash mid-write can leave an atomic write's hidden temp file; it is no artifact.
        if path.is_file() and not path.name.startswith(".")
    }


def check_digests(store: ProjectStore, events: list[Event]) -> tuple[list[str], list[str]]:
    """(problems, unrecorded): each recorded artifact that is missing or differs from the digest
    the log recorded last, one line each; and the files in `artifacts/` no event recorded.

    Unrecorded files are reported, not failed: the runbook's rollback (`git checkout <commit> --
    .somas/projects/<id>/`) leaves later stages' files behind, and nothing reads a file the
    log does not name.
    """
    recorded = recorded_digests(events)
    disk = _on_disk(store.artifacts_dir)
    problems = []
    for relative, (digest, seq) in sorted(recorded.items()):
        path = disk.get(relative)
        if path is None:
            problems.append(f"artifacts/{relative}: missing; event #{seq} recorded it")
        elif digest is not None and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(
                f"artifacts/{relative}: changed since event #{seq} recorded it "
                f"(sha256 {digest[:12]}…)"
            )
    return problems, sorted(set(disk) - set(recorded))
